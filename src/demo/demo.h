/* Entry point of `apigate demo` (the before/after story: mock, load, serve, load, table). It runs
 * the other commands as child processes of this binary and links none of their modules. */
#ifndef AG_DEMO_DEMO_H
#define AG_DEMO_DEMO_H

int demo_main(int argc, char **argv);

#endif
