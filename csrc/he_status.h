/* Status codes shared by every native module of henn.
 *
 * Every exported function returns one of these; the Python bindings turn a
 * non-zero code into a named he_core exception. Buffers are always owned by
 * the caller: the C core never allocates memory that outlives a call.
 */
#ifndef HE_STATUS_H
#define HE_STATUS_H

#define HE_OK 0
#define HE_ERR_ARGUMENT 1  /* a size, pointer or parameter is invalid */
#define HE_ERR_OVERFLOW 2  /* a result would not fit in its integer type */
#define HE_ERR_NOMEM 3     /* scratch allocation failed */
#define HE_ERR_RANGE 4     /* a value lies outside the range a parameter allows */

#endif
