/* The one public header of henn's native core.
 *
 * Conventions for every function declared below:
 *   - plain C11, no global state, thread-compatible;
 *   - all buffers are owned by the caller and passed with their sizes;
 *   - arrays are dense, row-major (C order);
 *   - the return value is an HE_* status code from he_status.h.
 */
#ifndef HE_CORE_H
#define HE_CORE_H
#include "he_status.h"
#include "vhe.h"
#include "ckks.h"
#endif
