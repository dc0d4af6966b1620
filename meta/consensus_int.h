/* Pieces of the raft adapter (consensus.c) that need no raft: the framing of raft entries.
 * Private to meta/consensus*.c.
 *
 * raft_uv stores only entries whose length is a multiple of 8. The state machine's entry
 * (format byte + Command, meta_cmd_entry_pack) is therefore followed by zero padding and one
 * final byte holding the number of bytes appended (1..8), and the padding is stripped again
 * before meta_fsm_apply_entry sees the entry. The entry still starts with the format byte.
 * None of these functions allocate or fail.
 */
#ifndef LODE_META_CONSENSUS_INT_H
#define LODE_META_CONSENSUS_INT_H

#include <stddef.h>
#include <stdint.h>

/* Size of the raft entry carrying an n-byte state-machine entry: n + 1..8, a multiple of 8. */
size_t meta_entry_padded_size(size_t n);

/* Writes the padding into entry[n .. size), where size = meta_entry_padded_size(n) and the
 * first n bytes already hold the state-machine entry. */
void meta_entry_pad(uint8_t *entry, size_t n, size_t size);

/* Length of the state-machine entry inside a raft entry of len bytes: len minus the padding
 * when the last byte is a plausible count (len a multiple of 8, count 1..8 and below len);
 * otherwise len, so an entry that was never padded passes through whole. */
size_t meta_entry_unpadded_len(const uint8_t *p, size_t len);

#endif
