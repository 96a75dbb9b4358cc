#ifndef CDELTAKIT_LIBPQ_SHIM_H
#define CDELTAKIT_LIBPQ_SHIM_H
#include <libpq-fe.h>
#endif
