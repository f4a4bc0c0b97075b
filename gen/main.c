/* kforge CLI (placeholder until the driver lands). */
#include <stdio.h>
#include "kf.h"
int main(void) {
  printf("kforge %s\n", KF_VERSION);
  return 0;
}
