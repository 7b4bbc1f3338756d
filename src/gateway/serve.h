/* Entry points of `apigate serve` and `apigate check`. */
#ifndef AG_GATEWAY_SERVE_H
#define AG_GATEWAY_SERVE_H
int serve_main(int argc, char **argv);
int check_main(int argc, char **argv);
#endif
