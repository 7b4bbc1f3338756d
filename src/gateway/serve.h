/* Entry points of `apigate serve`, `apigate check`, `apigate demo` and `apigate top`. */
#ifndef AG_GATEWAY_SERVE_H
#define AG_GATEWAY_SERVE_H
int serve_main(int argc, char **argv);
int check_main(int argc, char **argv);
int demo_main(int argc, char **argv);
int top_main(int argc, char **argv);
#endif
