/**
 * Versioned schema migrations of the SQLite backend. Each runs once, in order, inside a
 * transaction, and is recorded in `schema_migrations`. Never edit a migration that has shipped:
 * add a new one. A store whose schema is newer than this code knows is refused (STORE_TOO_NEW).
 *
 * Compact rows keep metadata small: hashes are 32-byte blobs, execution ids 16-byte UUIDv7,
 * step versions, runs and contexts are interned as integers.
 */

import { backfillMerkleLog } from './merkle-log.js';

/** One schema migration. */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
  /** Work done in JavaScript after the SQL, in the same transaction (e.g. filling a new table from old rows). */
  readonly after?: (db: import('better-sqlite3').Database) => void;
}

const appendOnly = (table: string): string => `
CREATE TRIGGER ${table}_no_update BEFORE UPDATE ON ${table}
BEGIN SELECT RAISE(ABORT, 'provenant: history is append-only (${table} cannot be updated)'); END;
CREATE TRIGGER ${table}_no_delete BEFORE DELETE ON ${table}
BEGIN SELECT RAISE(ABORT, 'provenant: history is append-only (${table} cannot be deleted from)'); END;`;

/** All migrations, in order. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'foundation: blobs, steps, runs, executions',
    sql: `
-- Rows append in insertion order; the unique index on the digest is what is searched.
-- (Keyed directly by the random digest, every insert would land on a random page of a large table.)
CREATE TABLE blobs (
  seq      INTEGER PRIMARY KEY,
  hash     BLOB NOT NULL UNIQUE,        -- 32-byte SHA-256 digest
  size     INTEGER NOT NULL,
  location INTEGER NOT NULL,            -- 0: bytes inline here, 1: file in the blob folder
  bytes    BLOB                         -- NULL when location = 1
);
CREATE TRIGGER blobs_no_update BEFORE UPDATE ON blobs
BEGIN SELECT RAISE(ABORT, 'provenant: blobs are immutable'); END;

CREATE TABLE step_versions (
  seq          INTEGER PRIMARY KEY,
  step_id      TEXT NOT NULL,
  version_hash BLOB NOT NULL,           -- hash of the artifact (a blob)
  manifest     TEXT NOT NULL,           -- JSON StepManifest
  first_seen   INTEGER NOT NULL,        -- epoch microseconds
  first_run    TEXT,
  UNIQUE (step_id, version_hash)
);

CREATE TABLE contexts (
  seq     INTEGER PRIMARY KEY,
  hash    BLOB NOT NULL UNIQUE,
  context TEXT NOT NULL                 -- canonical JSON
);

CREATE TABLE runs (
  seq         INTEGER PRIMARY KEY,
  id          TEXT NOT NULL UNIQUE,
  kind        TEXT NOT NULL,
  name        TEXT NOT NULL,
  started     INTEGER NOT NULL,
  environment TEXT NOT NULL,
  policy      TEXT NOT NULL,
  context     INTEGER NOT NULL REFERENCES contexts(seq),
  options     TEXT NOT NULL
);

CREATE TABLE run_ends (
  run     INTEGER PRIMARY KEY REFERENCES runs(seq),
  ended   INTEGER NOT NULL,
  status  TEXT NOT NULL,
  summary TEXT NOT NULL
);

CREATE TABLE streams (
  seq INTEGER PRIMARY KEY,
  id  TEXT NOT NULL UNIQUE
);

CREATE TABLE executions (
  id           BLOB PRIMARY KEY,        -- UUIDv7, 16 bytes, time-ordered
  run          INTEGER NOT NULL,
  step_version INTEGER NOT NULL,
  inputs       BLOB NOT NULL,           -- concatenated 32-byte digests, in order
  output       BLOB,                    -- digest, NULL when failed
  params       BLOB NOT NULL,           -- digest of the canonical params
  context      INTEGER NOT NULL,
  started      INTEGER NOT NULL,        -- epoch microseconds
  duration     INTEGER NOT NULL,        -- microseconds
  status       INTEGER NOT NULL,        -- 0 ok, 1 failed
  error        BLOB,                    -- digest of the recorded error value
  nondeterminism BLOB,                  -- digest of the recorded clock reads and random draws, NULL if none
  encodings    BLOB,                    -- NULL: all JSON; else a byte per value (output, inputs...), 1 = raw bytes
  stream       INTEGER,
  "offset"     INTEGER,
  record_hash  BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX executions_by_step ON executions (step_version, id);
CREATE INDEX executions_by_run ON executions (run, id);

CREATE TABLE dead_letters (
  execution BLOB PRIMARY KEY,
  run       INTEGER NOT NULL,
  reason    TEXT NOT NULL
) WITHOUT ROWID;
${['step_versions', 'contexts', 'runs', 'run_ends', 'streams', 'executions', 'dead_letters'].map(appendOnly).join('\n')}
`,
  },
  {
    version: 2,
    name: 'embedded stream log',
    sql: `
CREATE TABLE stream_log (
  stream   INTEGER NOT NULL REFERENCES streams(seq),
  "offset" INTEGER NOT NULL,            -- 0, 1, 2… per stream, no gaps
  value    BLOB NOT NULL,               -- digest of the record (a blob)
  encoding INTEGER NOT NULL,            -- 0: JSON, 1: raw bytes
  appended INTEGER NOT NULL,            -- epoch microseconds
  PRIMARY KEY (stream, "offset")
) WITHOUT ROWID;
${appendOnly('stream_log')}
`,
  },
  {
    version: 3,
    name: 'temporal checkpoints',
    sql: `
-- A checkpoint is opened (IN_PROGRESS) and later ended (COMPLETE or FAILED) by appending a row to
-- checkpoint_ends in the same transaction as all of its executions: neither table is ever updated.
CREATE TABLE checkpoints (
  seq          INTEGER PRIMARY KEY,
  id           TEXT NOT NULL UNIQUE,    -- UUIDv7
  run          INTEGER NOT NULL REFERENCES runs(seq),
  stream       INTEGER NOT NULL REFERENCES streams(seq),
  previous     TEXT,                    -- id of the checkpoint before it in the run's chain
  start_offset INTEGER NOT NULL,        -- first offset covered (inclusive)
  started      INTEGER NOT NULL,        -- epoch microseconds
  pipeline     BLOB NOT NULL            -- digest of the pipeline value (steps, versions, params)
);
CREATE INDEX checkpoints_by_stream ON checkpoints (stream, seq);
CREATE INDEX checkpoints_by_run ON checkpoints (run, seq);

CREATE TABLE checkpoint_ends (
  checkpoint      INTEGER PRIMARY KEY REFERENCES checkpoints(seq),
  status          TEXT NOT NULL,        -- COMPLETE | FAILED
  end_offset      INTEGER NOT NULL,     -- first offset not covered (exclusive)
  ended           INTEGER NOT NULL,     -- epoch microseconds: the checkpoint's timestamp
  records         INTEGER NOT NULL,
  executions      INTEGER NOT NULL,
  failed          INTEGER NOT NULL,
  dead_lettered   INTEGER NOT NULL,
  first_execution BLOB,                 -- UUIDv7 bytes; the checkpoint's executions are the run's
  last_execution  BLOB,                 --   executions with ids in [first, last]
  state           BLOB,                 -- digest of the stateful steps' snapshot, NULL if none
  sink            TEXT NOT NULL,        -- canonical JSON of the sink position (null if none)
  input_slice     BLOB,                 -- digest of the kept input slice, NULL if not kept
  reason          TEXT,                 -- why it FAILED
  record_hash     BLOB NOT NULL         -- hash of the canonical checkpoint record
);
${['checkpoints', 'checkpoint_ends'].map(appendOnly).join('\n')}
`,
  },
  {
    version: 4,
    name: 'objects, versions, lineage, materialization',
    sql: `
CREATE TABLE objects (
  seq INTEGER PRIMARY KEY,
  id  TEXT NOT NULL UNIQUE
);

-- A version is current from valid_from (transaction time) until the object's next version.
CREATE TABLE object_versions (
  seq          INTEGER PRIMARY KEY,     -- commit order
  id           BLOB NOT NULL UNIQUE,    -- UUIDv7, 16 bytes
  object       INTEGER NOT NULL REFERENCES objects(seq),
  ordinal      INTEGER NOT NULL,        -- 1, 2, 3… per object
  valid_from   INTEGER NOT NULL,        -- epoch microseconds, increasing per object
  value        BLOB NOT NULL,           -- digest of the content (a blob while kept)
  encoding     INTEGER NOT NULL,        -- 0 JSON, 1 raw bytes
  content_type TEXT NOT NULL,
  size         INTEGER NOT NULL,
  execution    BLOB,                    -- the execution that made it; NULL: ingested original
  record_hash  BLOB NOT NULL,
  UNIQUE (object, ordinal)
);
CREATE INDEX object_versions_by_time ON object_versions (object, valid_from);
CREATE INDEX object_versions_by_execution ON object_versions (execution) WHERE execution IS NOT NULL;
CREATE INDEX object_versions_by_value ON object_versions (value);

-- The provenance DAG: which versions an execution used, in input order.
CREATE TABLE version_inputs (
  execution BLOB NOT NULL,
  position  INTEGER NOT NULL,
  version   INTEGER NOT NULL REFERENCES object_versions(seq),
  PRIMARY KEY (execution, position)
) WITHOUT ROWID;
CREATE INDEX version_inputs_by_version ON version_inputs (version, execution);

-- Materialization: settings, pins and reads are appended; the latest row per scope or version wins.
CREATE TABLE materialization_settings (
  seq    INTEGER PRIMARY KEY,
  scope  TEXT NOT NULL,                 -- 'store' or 'step:<id>'
  policy TEXT NOT NULL,
  set_at INTEGER NOT NULL
);
CREATE TABLE version_pins (
  seq     INTEGER PRIMARY KEY,
  version INTEGER NOT NULL REFERENCES object_versions(seq),
  pinned  INTEGER NOT NULL,
  set_at  INTEGER NOT NULL
);
CREATE INDEX version_pins_by_version ON version_pins (version, seq);
CREATE TABLE version_reads (
  version    INTEGER NOT NULL REFERENCES object_versions(seq),
  at         INTEGER NOT NULL,
  recomputed INTEGER NOT NULL,
  cost_us    INTEGER NOT NULL
);
CREATE INDEX version_reads_by_version ON version_reads (version);
${['objects', 'object_versions', 'version_inputs', 'materialization_settings', 'version_pins', 'version_reads'].map(appendOnly).join('\n')}
`,
  },
  {
    version: 5,
    name: 'tamper evidence: Merkle log, signing keys, signed tree heads',
    sql: `
-- The Merkle log (RFC 9162 style; src/merkle/) has one leaf per execution and per ended checkpoint,
-- in commit order: leaf entry = the record's 32-byte canonical record hash (already stored with the
-- record), so no hash is stored twice. A segment row names a run of consecutive leaves by where
-- their records are, plus the tree's compact range (frontier) after it, to append without reading.
CREATE TABLE merkle_segments (
  seq       INTEGER PRIMARY KEY,        -- log order
  kind      INTEGER NOT NULL,           -- 0: executions of one run, 1: an ended checkpoint
  scope     INTEGER NOT NULL,           -- kind 0: runs.seq; kind 1: checkpoints.seq
  first     BLOB,                       -- kind 0: the first and last execution id of the range,
  last      BLOB,                       --   leaves in id order (a clean range: no other execution of the run in it)
  ids       BLOB,                       -- kind 0 when not a clean range: the ids (16 bytes each), in leaf order
  leaves    INTEGER NOT NULL,           -- leaves in this segment
  tree_size INTEGER NOT NULL,           -- tree size after it
  frontier  BLOB NOT NULL               -- the tree's perfect-subtree roots after it, largest first
);

CREATE TABLE signing_keys (
  seq        INTEGER PRIMARY KEY,
  key_id     BLOB NOT NULL UNIQUE,      -- SHA-256 of the public key (SubjectPublicKeyInfo DER)
  public_key TEXT NOT NULL,             -- PEM
  created    INTEGER NOT NULL           -- epoch microseconds
);

-- A signed tree head per COMPLETE checkpoint, committed with the checkpoint's end.
CREATE TABLE tree_heads (
  seq        INTEGER PRIMARY KEY,
  checkpoint INTEGER NOT NULL REFERENCES checkpoints(seq),
  tree_size  INTEGER NOT NULL,
  root       BLOB NOT NULL,
  timestamp  INTEGER NOT NULL,          -- epoch microseconds
  key        INTEGER REFERENCES signing_keys(seq),
  signature  BLOB                       -- Ed25519 over the canonical head (src/merkle/head.ts)
);
${['merkle_segments', 'signing_keys', 'tree_heads'].map(appendOnly).join('\n')}
`,
    after: (db) => backfillMerkleLog(db),
  },
  {
    version: 6,
    name: 'access: bearer tokens (hashes only), revocations, the access log',
    sql: `
CREATE TABLE tokens (
  seq       INTEGER PRIMARY KEY,
  id        TEXT NOT NULL UNIQUE,       -- UUIDv7
  hash      BLOB NOT NULL UNIQUE,       -- SHA-256 digest of the token string; the token itself is never stored
  principal TEXT NOT NULL,
  grants    TEXT NOT NULL,              -- JSON array of '<right>:<pattern>'
  created   INTEGER NOT NULL,           -- epoch microseconds
  expires   INTEGER,                    -- epoch microseconds, NULL: never
  label     TEXT
);

-- Revoking appends a row: tokens are never updated.
CREATE TABLE token_revocations (
  token   INTEGER PRIMARY KEY REFERENCES tokens(seq),
  revoked INTEGER NOT NULL              -- epoch microseconds
);

CREATE TABLE access_log (
  seq       INTEGER PRIMARY KEY,
  id        TEXT NOT NULL UNIQUE,       -- UUIDv7
  time      INTEGER NOT NULL,           -- epoch microseconds
  principal TEXT,                       -- NULL: no valid token
  token     TEXT,                       -- token id
  address   TEXT NOT NULL,
  method    TEXT NOT NULL,
  target    TEXT NOT NULL,
  route     TEXT,
  status    INTEGER NOT NULL,
  rights    TEXT NOT NULL,              -- JSON array of the grants used
  trace_id  TEXT NOT NULL,
  duration  INTEGER NOT NULL,           -- microseconds
  detail    TEXT NOT NULL               -- canonical JSON
);
CREATE INDEX access_log_by_principal ON access_log (principal, seq);
CREATE INDEX access_log_by_time ON access_log (time);
${['tokens', 'token_revocations', 'access_log'].map(appendOnly).join('\n')}
`,
  },
  {
    version: 7,
    name: 'replay jobs of the HTTP API: a snapshot appended at each change',
    sql: `
CREATE TABLE replay_job_snapshots (
  seq  INTEGER PRIMARY KEY,
  job  TEXT NOT NULL,                   -- the job id (UUIDv7)
  at   INTEGER NOT NULL,                -- epoch microseconds
  view TEXT NOT NULL                    -- the job as GET /replays/{id} shows it (JSON)
);
CREATE INDEX replay_job_snapshots_by_job ON replay_job_snapshots (job, seq);
${appendOnly('replay_job_snapshots')}
`,
  },
  {
    version: 8,
    name: 'values appended to blob_rows, found by digest through a small recent index merged in bulk into the main one',
    sql: `
-- One index keyed by random digests made every commit write pages all over it: the bytes written
-- per value grew with the store. See blob-table.ts.
CREATE TABLE blob_rows (
  seq      INTEGER PRIMARY KEY,         -- insertion order
  hash     BLOB NOT NULL,               -- 32-byte SHA-256 digest
  size     INTEGER NOT NULL,
  location INTEGER NOT NULL,            -- 0: bytes inline here, 1: file in the blob folder
  bytes    BLOB                         -- NULL when location = 1
);
INSERT INTO blob_rows (seq, hash, size, location, bytes) SELECT seq, hash, size, location, bytes FROM blobs ORDER BY seq;
CREATE TABLE blob_index (hash BLOB PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO blob_index (hash, seq) SELECT hash, seq FROM blobs ORDER BY hash;
CREATE TABLE blob_recent (hash BLOB PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
DROP TABLE blobs;
CREATE TRIGGER blob_rows_no_update BEFORE UPDATE ON blob_rows
BEGIN SELECT RAISE(ABORT, 'provenant: blobs are immutable'); END;
-- Every digest is in exactly one of the two indexes.
CREATE VIEW blobs (seq, hash, size, location, bytes) AS
  SELECT r.seq, r.hash, r.size, r.location, r.bytes FROM blob_index i JOIN blob_rows r ON r.seq = i.seq
  UNION ALL
  SELECT r.seq, r.hash, r.size, r.location, r.bytes FROM blob_recent i JOIN blob_rows r ON r.seq = i.seq;
`,
  },
  {
    version: 9,
    name: 'value indexes keyed by the first 8 bytes of the digest',
    sql: `
-- Entries a quarter the size: fewer pages to touch and write per commit, cheaper comparisons.
-- Two digests may share a prefix: the full digest is in blob_rows. See blob-table.ts.
DROP VIEW blobs;
CREATE TABLE blob_index_new (k BLOB NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (k, seq)) WITHOUT ROWID;
INSERT INTO blob_index_new (k, seq) SELECT substr(hash, 1, 8), seq FROM blob_index ORDER BY hash;
CREATE TABLE blob_recent_new (k BLOB NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (k, seq)) WITHOUT ROWID;
INSERT INTO blob_recent_new (k, seq) SELECT substr(hash, 1, 8), seq FROM blob_recent ORDER BY hash;
DROP TABLE blob_index;
DROP TABLE blob_recent;
ALTER TABLE blob_index_new RENAME TO blob_index;
ALTER TABLE blob_recent_new RENAME TO blob_recent;
-- Every value's row is in exactly one of the two indexes.
CREATE VIEW blobs (seq, hash, size, location, bytes) AS
  SELECT r.seq, r.hash, r.size, r.location, r.bytes FROM blob_index i JOIN blob_rows r ON r.seq = i.seq
  UNION ALL
  SELECT r.seq, r.hash, r.size, r.location, r.bytes FROM blob_recent i JOIN blob_rows r ON r.seq = i.seq;
`,
  },
];

/** The newest schema version this code knows. */
export const SCHEMA_VERSION = MIGRATIONS.length;
