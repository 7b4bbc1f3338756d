/* Declarations shared by the files of src/http only (no other folder includes this): the
 * character-class tables of RFC 9110/9112 that the parser, the chunked decoder and the
 * Cache-Control parser all need. Defined in h1parse.c. */
#ifndef AG_HTTP_INTERNAL_H
#define AG_HTTP_INTERNAL_H

/* tchar (RFC 9110 §5.6.2): method and field-name characters. */
extern const unsigned char h1__tchar[256];
/* field-value and reason-phrase bytes: HTAB, SP, VCHAR, obs-text (no CTL, no DEL). */
extern const unsigned char h1__vchar[256];

#endif
