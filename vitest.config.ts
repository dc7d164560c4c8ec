import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: ['default'],
    // PostgreSQL stores keep their signing keys outside the database, here (not in ~/.provenant).
    env: { PROVENANT_KEYS_DIR: join(tmpdir(), 'provenant-test-keys') },
  },
});
