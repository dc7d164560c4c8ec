/**
 * Bearer tokens against a real embedded store: a revocation takes effect as soon as it is
 * recorded, even when the process that revoked stamped it with a clock ahead of the server's
 * (the server read the revocation time against its own millisecond clock and let the token
 * through until that time had passed).
 */
import { describe, expect, it } from 'vitest';
import { authenticate, cachedAuthenticator, createToken } from '../../src/auth/tokens.js';
import { nowUs } from '../../src/ids.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { makeTempDir } from '../helpers/temp.js';

describe('bearer tokens', () => {
  it('a token revoked by a process whose clock is ahead is refused at once, cached or not', async () => {
    const store = SqliteStore.open(makeTempDir());
    try {
      const { token, info } = await createToken(store, { principal: 'temp', grants: ['steps:*'] });
      const server = cachedAuthenticator(store);
      expect((await server(token)).ok).toBe(true);
      expect((await server(token)).ok).toBe(true); // remembered now
      // Another process revokes it; its clock reads 2 s ahead of this one.
      await store.revokeToken(info.id, nowUs() + 2_000_000);
      expect(await server(token)).toMatchObject({ ok: false, reason: 'revoked' });
      expect(await authenticate(store, token)).toMatchObject({ ok: false, reason: 'revoked' });
    } finally {
      await store.close();
    }
  });
});
