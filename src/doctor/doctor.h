/* Entry point of `apigate doctor`. */
#ifndef AG_DOCTOR_DOCTOR_H
#define AG_DOCTOR_DOCTOR_H
int doctor_main(int argc, char **argv);
#endif
