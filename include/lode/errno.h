/* lode error codes.
 *
 * One error space for the whole project: functions return 0 on success, a negative errno
 * value (-ENOENT, -EIO, ...) for system errors, or one of the negative LODE_E* codes below
 * for domain errors. The lode range is [-1999, -1000], which no errno value reaches.
 * lode_strerror() turns any of them into text.
 */
#ifndef LODE_ERRNO_H
#define LODE_ERRNO_H

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, number, text): the one table. Numbers are part of the wire protocol (RPC status
 * fields carry them): never renumber, only append. */
#define LODE_ERRNO_MAP(X)                                                              \
    X(EINTERNAL, 1000, "internal error")                                              \
    X(ENOTLEADER, 1001, "not the leader")                                             \
    X(ENOLEADER, 1002, "no leader elected")                                           \
    X(EAUTH, 1003, "authentication failed")                                           \
    X(EBADMSG, 1004, "malformed message")                                             \
    X(EFRAMETOOBIG, 1005, "frame too large")                                          \
    X(EVERSION, 1006, "unsupported protocol or format version")                       \
    X(ETIMEOUT, 1007, "timed out")                                                    \
    X(ECLOSED, 1008, "connection closed")                                             \
    X(ENOMETHOD, 1009, "unknown method")                                              \
    X(ECONFIG, 1010, "invalid configuration")                                         \
    X(ENOBUCKET, 1011, "no such bucket")                                              \
    X(EBUCKETEXISTS, 1012, "bucket already exists")                                   \
    X(EBUCKETNOTEMPTY, 1013, "bucket not empty")                                      \
    X(ENOKEY, 1014, "no such key")                                                    \
    X(EPRECONDITION, 1015, "precondition failed")                                     \
    X(ENOUPLOAD, 1016, "no such upload")                                              \
    X(EBADPART, 1017, "invalid part")                                                 \
    X(EPARTORDER, 1018, "invalid part order")                                         \
    X(ENOUSER, 1019, "no such user")                                                  \
    X(EUSEREXISTS, 1020, "user already exists")                                       \
    X(ENOACCESSKEY, 1021, "no such access key")                                       \
    X(ENONODE, 1022, "no such node")                                                  \
    X(EINVALNAME, 1023, "invalid name")                                               \
    X(ECORRUPT, 1024, "data corrupt (checksum mismatch)")                             \
    X(ENOSPACE, 1025, "insufficient storage")                                         \
    X(ESTATE, 1026, "invalid state transition")                                       \
    X(EMETAFULL, 1027, "metadata store full")                                         \
    X(ESHUTDOWN, 1028, "shutting down")                                               \
    X(EUNAVAILABLE, 1029, "service unavailable")                                      \
    X(EMEMBERSHIP, 1030, "membership change refused")                                 \
    X(ETOOLARGE, 1031, "value too large")                                             \
    X(ENOCHUNK, 1032, "no such chunk")                                                \
    X(EWRONGDISK, 1033, "data directory belongs to another node or cluster")          \
    X(ENOSESSION, 1034, "no such data session")                                       \
    X(EWINDOW, 1035, "transfer outside the client's window")

enum lode_errno {
#define LODE_ERRNO_ENUM(name, num, text) LODE_##name = -(num),
    LODE_ERRNO_MAP(LODE_ERRNO_ENUM)
#undef LODE_ERRNO_ENUM
};

#define LODE_ERRNO_MIN (-1999)
#define LODE_ERRNO_MAX (-1000)

/* Text for any code this project returns: 0, a negative errno, or a LODE_E* code.
 * Never NULL; the string is static and valid forever; thread-safe. */
const char *lode_strerror(int code);

/* Symbolic name ("LODE_ENOKEY", "ENOENT"), or "E?" when unknown. Static; thread-safe. */
const char *lode_errname(int code);

#ifdef __cplusplus
}
#endif
#endif
