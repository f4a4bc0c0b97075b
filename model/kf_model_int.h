/*
** kf_model_int.h: helpers shared by the model/ sources (not an API).
*/
#ifndef KF_MODEL_INT_H
#define KF_MODEL_INT_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
void kf_model_err(char *err, size_t errlen, const char *fmt, ...);
/* Reads a whole file (NUL-terminated; *len without the NUL). */
int kf_model_read_file(const char *path, char **text, size_t *len, char *err, size_t errlen);
/* Parses "1,16,512" into at most max positive integers; -1 on a bad list. */
int kf_model_parse_list(const char *s, int64_t *out, int max);

#endif
