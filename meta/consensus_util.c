/* The raft adapter's raft-free helpers (see consensus_int.h): entry padding and role names. */
#include "meta/consensus.h"
#include "meta/consensus_int.h"

#include <string.h>

const char *meta_role_name(enum meta_role role)
{
    switch (role) {
    case META_ROLE_LEADER:
        return "leader";
    case META_ROLE_FOLLOWER:
        return "follower";
    case META_ROLE_CANDIDATE:
        return "candidate";
    default:
        return "unavailable";
    }
}

size_t meta_entry_padded_size(size_t n)
{
    return (n + 1 + 7) & ~(size_t)7;
}

void meta_entry_pad(uint8_t *entry, size_t n, size_t size)
{
    memset(entry + n, 0, size - n);
    entry[size - 1] = (uint8_t)(size - n);
}

size_t meta_entry_unpadded_len(const uint8_t *p, size_t len)
{
    if (len == 0 || len % 8 != 0)
        return len;
    size_t k = p[len - 1];
    return k >= 1 && k <= 8 && k < len ? len - k : len;
}
