/* Entry point of `apigate load`. */
#ifndef AG_LOAD_LOAD_H
#define AG_LOAD_LOAD_H
int load_main(int argc, char **argv);
#endif
