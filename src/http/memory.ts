/**
 * SQLite page cache of each connection a server opens (its own, its writer thread's, each
 * recompute worker's), in MiB. A server appends its access log and read records all the time;
 * with capture's 64 MiB per connection the cached new pages would grow its memory by up to that
 * much per connection. The OS page cache still holds the hot pages.
 */
export const SERVER_CACHE_MIB = 8;
