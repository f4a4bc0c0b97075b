/* Keeps the kf_testsupport library non-empty. */
int kf_testsupport_present_(void);
int kf_testsupport_present_(void) { return 1; }
