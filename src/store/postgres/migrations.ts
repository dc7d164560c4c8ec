/**
 * Versioned schema migrations of the PostgreSQL backend, numbered on their own (this is not the
 * SQLite schema). Each runs once, in order, in a transaction holding an advisory lock so that
 * several workers opening the store at once migrate it once; each is recorded in
 * `schema_migrations`. Never edit a migration that has shipped: add a new one at the end.
 *
 * Shape: hashes are 32-byte `bytea` digests, execution ids `uuid` (time-ordered UUIDv7), times
 * `bigint` microseconds since the epoch; step versions and runs are interned as `bigint` numbers.
 * History is append-only: triggers refuse UPDATE, DELETE and TRUNCATE on every history table.
 */

/** One schema migration. */
export interface PgMigration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
  /** Work done after the SQL, in the same transaction (e.g. filling a new table from old rows). */
  readonly after?: (client: import('pg').ClientBase) => Promise<void>;
}

const appendOnly = (table: string): string => `
CREATE TRIGGER ${table}_append_only BEFORE UPDATE OR DELETE ON ${table}
  FOR EACH ROW EXECUTE FUNCTION provenant_append_only();
CREATE TRIGGER ${table}_no_truncate BEFORE TRUNCATE ON ${table}
  FOR EACH STATEMENT EXECUTE FUNCTION provenant_append_only();`;

/** All migrations, in order. */
export const PG_MIGRATIONS: readonly PgMigration[] = [
  {
    version: 1,
    name: 'foundation: blobs, steps, runs, executions, stream logs, checkpoints',
    sql: `
CREATE FUNCTION provenant_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'provenant: history is append-only (% cannot be %d)', TG_TABLE_NAME, lower(TG_OP)
    USING ERRCODE = 'P0001', HINT = 'Record a new row instead (a replay or what-if is a run of its own).';
END $$;

CREATE FUNCTION provenant_immutable_blob() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'provenant: blobs are immutable (%)', TG_TABLE_NAME USING ERRCODE = 'P0001';
END $$;

-- Blobs: small ones inline in "bytes"; large ones (location 2) in blob_chunks under "chunks".
CREATE TABLE blobs (
  seq      bigserial PRIMARY KEY,
  hash     bytea NOT NULL UNIQUE,
  size     bigint NOT NULL,
  location smallint NOT NULL,           -- 0: inline, 2: chunked
  bytes    bytea,                       -- NULL when chunked
  chunks   bigint                       -- chunk set of a chunked blob
);
CREATE TABLE blob_chunks (
  chunks bigint NOT NULL,
  n      integer NOT NULL,
  bytes  bytea NOT NULL,
  PRIMARY KEY (chunks, n)
);
CREATE SEQUENCE blob_chunk_sets;
CREATE TRIGGER blobs_immutable BEFORE UPDATE ON blobs FOR EACH ROW EXECUTE FUNCTION provenant_immutable_blob();
CREATE TRIGGER blob_chunks_immutable BEFORE UPDATE ON blob_chunks FOR EACH ROW EXECUTE FUNCTION provenant_immutable_blob();

CREATE TABLE step_versions (
  seq          bigserial PRIMARY KEY,
  step_id      text NOT NULL,
  version_hash bytea NOT NULL,
  manifest     text NOT NULL,           -- JSON StepManifest
  first_seen   bigint NOT NULL,
  first_run    text,
  UNIQUE (step_id, version_hash)
);

CREATE TABLE contexts (
  hash    bytea PRIMARY KEY,
  context text NOT NULL                 -- canonical JSON
);

CREATE TABLE runs (
  seq         bigserial PRIMARY KEY,
  id          text NOT NULL UNIQUE,
  kind        text NOT NULL,
  name        text NOT NULL,
  started     bigint NOT NULL,
  environment text NOT NULL,
  policy      text NOT NULL,
  context     bytea NOT NULL REFERENCES contexts(hash),
  options     text NOT NULL
);

CREATE TABLE run_ends (
  run     bigint PRIMARY KEY REFERENCES runs(seq),
  ended   bigint NOT NULL,
  status  text NOT NULL,
  summary text NOT NULL
);

CREATE TABLE executions (
  id             uuid PRIMARY KEY,      -- UUIDv7, time-ordered
  run            bigint NOT NULL,
  step_version   bigint NOT NULL,
  inputs         bytea NOT NULL,        -- concatenated 32-byte digests, in order
  output         bytea,
  params         bytea NOT NULL,
  context        bytea NOT NULL,        -- digest of the context (contexts.hash)
  started        bigint NOT NULL,
  duration       bigint NOT NULL,
  status         smallint NOT NULL,     -- 0 ok, 1 failed
  error          bytea,
  nondeterminism bytea,
  encodings      bytea,                 -- NULL: all JSON; else a byte per value (output, inputs...)
  stream         text,
  "offset"       bigint,
  record_hash    bytea NOT NULL
);
CREATE INDEX executions_by_step ON executions (step_version, id);
CREATE INDEX executions_by_run ON executions (run, id);

CREATE TABLE dead_letters (
  execution uuid PRIMARY KEY,
  run       bigint NOT NULL,
  reason    text NOT NULL
);

CREATE TABLE stream_log (
  stream   text NOT NULL,
  "offset" bigint NOT NULL,
  value    bytea NOT NULL,
  encoding smallint NOT NULL,           -- 0: JSON, 1: raw bytes
  appended bigint NOT NULL,
  PRIMARY KEY (stream, "offset")
);

CREATE TABLE checkpoints (
  seq          bigserial PRIMARY KEY,
  id           uuid NOT NULL UNIQUE,
  run          bigint NOT NULL REFERENCES runs(seq),
  stream       text NOT NULL,
  previous     uuid,
  start_offset bigint NOT NULL,
  started      bigint NOT NULL,
  pipeline     bytea NOT NULL
);
CREATE INDEX checkpoints_by_stream ON checkpoints (stream, seq);
CREATE INDEX checkpoints_by_run ON checkpoints (run, seq);

CREATE TABLE checkpoint_ends (
  checkpoint      bigint PRIMARY KEY REFERENCES checkpoints(seq),
  status          text NOT NULL,
  end_offset      bigint NOT NULL,
  ended           bigint NOT NULL,
  records         bigint NOT NULL,
  executions      bigint NOT NULL,
  failed          bigint NOT NULL,
  dead_lettered   bigint NOT NULL,
  first_execution uuid,
  last_execution  uuid,
  state           bytea,
  sink            text NOT NULL,
  input_slice     bytea,
  reason          text,
  record_hash     bytea NOT NULL
);
${['step_versions', 'contexts', 'runs', 'run_ends', 'executions', 'dead_letters', 'stream_log', 'checkpoints', 'checkpoint_ends'].map(appendOnly).join('\n')}
`,
  },
  {
    version: 2,
    name: 'shared work: stream segments and jobs taken by workers with leases',
    sql: `
-- A stream is shared out among workers in segments of consecutive offsets [start_offset, end_offset),
-- each processed by one worker under a lease as ONE checkpoint. Segments are work items, not
-- history: their status changes (open → running → done); what they produced is in the history.
CREATE TABLE work_segments (
  grp          text NOT NULL,           -- the worker group (pipeline name by default)
  stream       text NOT NULL,           -- the stream id (jetstream:NAME)
  start_offset bigint NOT NULL,
  end_offset   bigint NOT NULL,
  status       text NOT NULL,           -- open | running | done
  attempts     integer NOT NULL DEFAULT 0,
  worker       text,
  lease_until  bigint,                  -- epoch microseconds (server clock); a running segment past it is free again
  run_id       text,                    -- the run that completed it
  PRIMARY KEY (grp, stream, start_offset)
);
CREATE INDEX work_segments_free ON work_segments (grp, stream, status, start_offset);

-- Jobs are work items, not history: their state changes (queued → leased → done/failed).
CREATE TABLE jobs (
  id           uuid PRIMARY KEY,
  kind         text NOT NULL,           -- replay | whatif
  spec         text NOT NULL,           -- canonical JSON of the job's arguments
  status       text NOT NULL,           -- queued | running | done | failed
  attempts     integer NOT NULL DEFAULT 0,
  max_attempts integer NOT NULL DEFAULT 3,
  worker       text,
  lease_until  bigint,                  -- epoch microseconds; a running job whose lease passed is free again
  submitted    bigint NOT NULL,
  started      bigint,
  finished     bigint,
  result       text,                    -- canonical JSON of the outcome
  error        text
);
CREATE INDEX jobs_free ON jobs (status, submitted);
`,
  },
  {
    version: 3,
    name: 'objects, versions, lineage, materialization',
    sql: `
CREATE TABLE objects (
  seq bigserial PRIMARY KEY,
  id  text NOT NULL UNIQUE
);

-- A version is current from valid_from (transaction time) until the object's next version.
CREATE TABLE object_versions (
  seq          bigserial PRIMARY KEY,   -- commit order
  id           uuid NOT NULL UNIQUE,
  object       bigint NOT NULL REFERENCES objects(seq),
  ordinal      integer NOT NULL,        -- 1, 2, 3… per object
  valid_from   bigint NOT NULL,         -- epoch microseconds, increasing per object
  value        bytea NOT NULL,          -- digest of the content (a blob while kept)
  encoding     smallint NOT NULL,       -- 0 JSON, 1 raw bytes
  content_type text NOT NULL,
  size         bigint NOT NULL,
  execution    uuid,                    -- the execution that made it; NULL: ingested original
  record_hash  bytea NOT NULL,
  UNIQUE (object, ordinal)
);
CREATE INDEX object_versions_by_time ON object_versions (object, valid_from);
CREATE INDEX object_versions_by_execution ON object_versions (execution) WHERE execution IS NOT NULL;
CREATE INDEX object_versions_by_value ON object_versions (value);

-- The provenance DAG: which versions an execution used, in input order.
CREATE TABLE version_inputs (
  execution uuid NOT NULL,
  position  integer NOT NULL,
  version   bigint NOT NULL REFERENCES object_versions(seq),
  PRIMARY KEY (execution, position)
);
CREATE INDEX version_inputs_by_version ON version_inputs (version, execution);

-- Materialization: settings, pins and reads are appended; the latest row per scope or version wins.
CREATE TABLE materialization_settings (
  seq    bigserial PRIMARY KEY,
  scope  text NOT NULL,
  policy text NOT NULL,
  set_at bigint NOT NULL
);
CREATE TABLE version_pins (
  seq     bigserial PRIMARY KEY,
  version bigint NOT NULL REFERENCES object_versions(seq),
  pinned  smallint NOT NULL,
  set_at  bigint NOT NULL
);
CREATE INDEX version_pins_by_version ON version_pins (version, seq);
CREATE TABLE version_reads (
  version    bigint NOT NULL REFERENCES object_versions(seq),
  at         bigint NOT NULL,
  recomputed smallint NOT NULL,
  cost_us    bigint NOT NULL
);
CREATE INDEX version_reads_by_version ON version_reads (version);
${['objects', 'object_versions', 'version_inputs', 'materialization_settings', 'version_pins', 'version_reads'].map(appendOnly).join('\n')}
`,
  },
  {
    version: 4,
    name: 'access: bearer tokens (hashes only), revocations, the access log',
    sql: `
CREATE TABLE tokens (
  seq       bigserial PRIMARY KEY,
  id        text NOT NULL UNIQUE,
  hash      bytea NOT NULL UNIQUE,         -- SHA-256 digest of the token string; the token itself is never stored
  principal text NOT NULL,
  grants    text NOT NULL,                 -- JSON array of '<right>:<pattern>'
  created   bigint NOT NULL,
  expires   bigint,
  label     text
);
-- Revoking appends a row: tokens are never updated.
CREATE TABLE token_revocations (
  token   bigint PRIMARY KEY REFERENCES tokens(seq),
  revoked bigint NOT NULL
);
CREATE TABLE access_log (
  seq       bigserial PRIMARY KEY,
  id        text NOT NULL UNIQUE,
  time      bigint NOT NULL,
  principal text,
  token     text,
  address   text NOT NULL,
  method    text NOT NULL,
  target    text NOT NULL,
  route     text,
  status    integer NOT NULL,
  rights    text NOT NULL,
  trace_id  text NOT NULL,
  duration  bigint NOT NULL,
  detail    text NOT NULL
);
CREATE INDEX access_log_by_principal ON access_log (principal, seq);
CREATE INDEX access_log_by_time ON access_log (time);
${['tokens', 'token_revocations', 'access_log'].map(appendOnly).join('\n')}
`,
  },
  {
    version: 5,
    name: 'blobs keyed by their hash alone (no sequence column: one index less per blob written)',
    sql: `
ALTER TABLE blobs DROP COLUMN seq;
ALTER TABLE blobs DROP CONSTRAINT blobs_hash_key;
ALTER TABLE blobs ADD PRIMARY KEY (hash);
`,
  },
  {
    version: 6,
    name: 'replay jobs of the HTTP API: a snapshot appended at each change',
    sql: `
CREATE TABLE replay_job_snapshots (
  seq  bigserial PRIMARY KEY,
  job  text NOT NULL,                   -- the job id (UUIDv7)
  at   bigint NOT NULL,                 -- epoch microseconds
  view text NOT NULL                    -- the job as GET /replays/{id} shows it (JSON)
);
CREATE INDEX replay_job_snapshots_by_job ON replay_job_snapshots (job, seq);
${appendOnly('replay_job_snapshots')}
`,
  },
  {
    version: 7,
    name: 'tamper evidence: Merkle log, signing keys, signed tree heads (as the SQLite backend)',
    sql: `
-- The Merkle log (RFC 9162 style; src/merkle/): one leaf per execution, ended checkpoint and object
-- version, in commit order; a leaf's entry is the record hash stored with its record. Appends are
-- serialized by a transaction-level advisory lock taken just before commit, so concurrent workers
-- get one total order. A segment row names a run of consecutive leaves by where their records are,
-- plus the tree's frontier after it (appending never reads earlier leaves).
CREATE TABLE merkle_segments (
  seq       bigserial PRIMARY KEY,      -- log order
  kind      smallint NOT NULL,          -- 0: executions of one run, 1: an ended checkpoint, 2: object versions
  scope     bigint NOT NULL,            -- kind 0: runs.seq; 1: checkpoints.seq; 2: the first version's seq
  first     bytea,                      -- kind 0: first and last execution id (16 bytes) of a clean range
  last      bytea,
  ids       bytea,                      -- kind 0 not a clean range, and kind 2: the ids (16 bytes each), in leaf order
  leaves    bigint NOT NULL,
  tree_size bigint NOT NULL,            -- tree size after it
  frontier  bytea NOT NULL              -- the tree's perfect-subtree roots after it, largest first
);

CREATE TABLE signing_keys (
  seq        bigserial PRIMARY KEY,
  key_id     bytea NOT NULL UNIQUE,     -- SHA-256 of the public key (SubjectPublicKeyInfo DER)
  public_key text NOT NULL,             -- PEM
  created    bigint NOT NULL
);

-- A signed tree head per COMPLETE checkpoint, committed with the checkpoint's end.
CREATE TABLE tree_heads (
  seq        bigserial PRIMARY KEY,
  checkpoint bigint NOT NULL REFERENCES checkpoints(seq),
  tree_size  bigint NOT NULL,
  root       bytea NOT NULL,
  timestamp  bigint NOT NULL,
  key        bigint REFERENCES signing_keys(seq),
  signature  bytea
);
${['merkle_segments', 'signing_keys', 'tree_heads'].map(appendOnly).join('\n')}
`,
    after: async (client) => (await import('./merkle-log.js')).backfillPgMerkleLog(client),
  },
  {
    version: 8,
    name: 'large values compressed with lz4 instead of pglz (new values; where the server has lz4)',
    // Values over ~2 KB (a pipeline's state snapshots, aggregates) are compressed as they are
    // stored. pglz cost PostgreSQL about 6 % of its CPU in the worker benchmark; lz4 is several
    // times faster. A server built without lz4 (or older than 14) keeps pglz: EXECUTE defers the
    // statement's parsing so that either error can be caught here.
    sql: `
DO $$
BEGIN
  EXECUTE 'ALTER TABLE blobs ALTER COLUMN bytes SET COMPRESSION lz4';
  EXECUTE 'ALTER TABLE blob_chunks ALTER COLUMN bytes SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported OR syntax_error OR invalid_parameter_value THEN
  RAISE NOTICE 'provenant: lz4 is not available on this server (%); large values stay compressed with pglz', SQLERRM;
END $$;
`,
  },
];

/** The newest PostgreSQL schema version this code knows. */
export const PG_SCHEMA_VERSION = PG_MIGRATIONS.length;
