/*
 * dlist.h - intrusive doubly linked lists headed by a plain pointer: the node
 * type carries the two link fields (named by the caller), the list is the
 * head pointer. Used for the registries of open handles, connections and
 * inodes that are walked at shutdown. The caller does the locking.
 */
#ifndef SL_COMMON_DLIST_H
#define SL_COMMON_DLIST_H

#include <stddef.h>

/* Puts node at the front of the list headed by head. */
#define SL_DLIST_PUSH(head, node, prev, next)                                                      \
	do {                                                                                       \
		(node)->prev = NULL;                                                               \
		(node)->next = (head);                                                             \
		if (head)                                                                          \
			(head)->prev = (node);                                                     \
		(head) = (node);                                                                   \
	} while (0)

/* Takes node (on the list headed by head) off it. */
#define SL_DLIST_UNLINK(head, node, prev, next)                                                    \
	do {                                                                                       \
		if ((node)->prev)                                                                  \
			(node)->prev->next = (node)->next;                                         \
		else                                                                               \
			(head) = (node)->next;                                                     \
		if ((node)->next)                                                                  \
			(node)->next->prev = (node)->prev;                                         \
	} while (0)

#endif
