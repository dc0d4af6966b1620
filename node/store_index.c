/* The store's ordered maps (chunk id -> entry, chunk id -> tombstone): an intrusive AVL tree
 * with parent pointers, so lookups are O(log n) and a paged listing walks in id order from
 * any point without a stack. Keys are embedded in the entries: no allocation here. */
#include <errno.h>
#include <stddef.h>

#include "node/store_int.h"

static int height(const struct store_key *n)
{
    return n ? n->height : 0;
}

static void update(struct store_key *n)
{
    int l = height(n->left), r = height(n->right);
    n->height = 1 + (l > r ? l : r);
}

static void replace_child(struct store_tree *t, struct store_key *parent, struct store_key *old,
                          struct store_key *new)
{
    if (!parent)
        t->root = new;
    else if (parent->left == old)
        parent->left = new;
    else
        parent->right = new;
    if (new)
        new->parent = parent;
}

static struct store_key *rotate_left(struct store_tree *t, struct store_key *x)
{
    struct store_key *y = x->right;
    x->right = y->left;
    if (y->left)
        y->left->parent = x;
    replace_child(t, x->parent, x, y);
    y->left = x;
    x->parent = y;
    update(x);
    update(y);
    return y;
}

static struct store_key *rotate_right(struct store_tree *t, struct store_key *x)
{
    struct store_key *y = x->left;
    x->left = y->right;
    if (y->right)
        y->right->parent = x;
    replace_child(t, x->parent, x, y);
    y->right = x;
    x->parent = y;
    update(x);
    update(y);
    return y;
}

/* Restores heights and balance from n up to the root. */
static void rebalance(struct store_tree *t, struct store_key *n)
{
    while (n) {
        update(n);
        int bf = height(n->left) - height(n->right);
        if (bf > 1) {
            if (height(n->left->left) < height(n->left->right))
                rotate_left(t, n->left);
            n = rotate_right(t, n);
        } else if (bf < -1) {
            if (height(n->right->right) < height(n->right->left))
                rotate_right(t, n->right);
            n = rotate_left(t, n);
        }
        n = n->parent;
    }
}

struct store_key *store_tree_find(const struct store_tree *t, const struct cmn_id *id)
{
    struct store_key *n = t->root;
    while (n) {
        int c = cmn_id_cmp(id, &n->id);
        if (c == 0)
            return n;
        n = c < 0 ? n->left : n->right;
    }
    return NULL;
}

struct store_key *store_tree_upper(const struct store_tree *t, const struct cmn_id *id)
{
    struct store_key *n = t->root, *best = NULL;
    if (!id) {
        while (n && n->left)
            n = n->left;
        return n;
    }
    while (n) {
        if (cmn_id_cmp(&n->id, id) > 0) {
            best = n;
            n = n->left;
        } else {
            n = n->right;
        }
    }
    return best;
}

struct store_key *store_tree_next(struct store_key *k)
{
    if (k->right) {
        k = k->right;
        while (k->left)
            k = k->left;
        return k;
    }
    while (k->parent && k->parent->right == k)
        k = k->parent;
    return k->parent;
}

int store_tree_insert(struct store_tree *t, struct store_key *k)
{
    struct store_key *parent = NULL, **link = &t->root;
    int c = 0;
    while (*link) {
        parent = *link;
        c = cmn_id_cmp(&k->id, &parent->id);
        if (c == 0)
            return -EEXIST;
        link = c < 0 ? &parent->left : &parent->right;
    }
    k->left = k->right = NULL;
    k->parent = parent;
    k->height = 1;
    *link = k;
    t->count++;
    rebalance(t, parent);
    return 0;
}

void store_tree_remove(struct store_tree *t, struct store_key *k)
{
    struct store_key *start;
    if (k->left && k->right) {
        /* Replace k by its successor s (leftmost of the right subtree, no left child). */
        struct store_key *s = k->right;
        while (s->left)
            s = s->left;
        if (s->parent != k) {
            start = s->parent;
            replace_child(t, s->parent, s, s->right);
            s->right = k->right;
            k->right->parent = s;
        } else {
            start = s;
        }
        s->left = k->left;
        k->left->parent = s;
        replace_child(t, k->parent, k, s);
    } else {
        start = k->parent;
        replace_child(t, k->parent, k, k->left ? k->left : k->right);
    }
    k->left = k->right = k->parent = NULL;
    t->count--;
    rebalance(t, start);
}

void store_tree_destroy(struct store_tree *t, void (*fn)(struct store_key *k))
{
    /* Post-order through parent pointers: each key is detached from its parent before fn
     * frees it, so no freed key is visited again. */
    struct store_key *n = t->root;
    while (n) {
        if (n->left) {
            n = n->left;
            continue;
        }
        if (n->right) {
            n = n->right;
            continue;
        }
        struct store_key *p = n->parent;
        if (p) {
            if (p->left == n)
                p->left = NULL;
            else
                p->right = NULL;
        }
        fn(n);
        n = p;
    }
    t->root = NULL;
    t->count = 0;
}
