/* Entry point of `apigate top`: live gateway statistics in the terminal, read from the admin
 * listener's /stats over HTTP (net/httpc), like any other client of it. */
#ifndef AG_TOP_TOP_H
#define AG_TOP_TOP_H

int top_main(int argc, char **argv);

#endif
