/* Entry point of `apigate mock`. */
#ifndef AG_MOCK_MOCK_H
#define AG_MOCK_MOCK_H
int mock_main(int argc, char **argv);
#endif
