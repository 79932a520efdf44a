/**
 * The WeChat Pay sandbox's identity: a merchant number, a public-key ID, an APIv3 key and two RSA key pairs that
 * ship in server/sandbox-keys/ (public, sandbox-only: see its README). Used by `npm start` in sandbox mode and by the
 * tests; never read when WeChat Pay is configured for real.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const SANDBOX_KEYS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../sandbox-keys');

export const SANDBOX_PAY = Object.freeze({
  mchid: '1900000001',
  /** Serial number of the (imaginary) merchant API certificate; the sandbox does not check it. */
  merchantSerial: '5A0C3B1D2E3F40516273849506A7B8C9D0E1F203',
  /** The sandbox signs as WeChat Pay's public-key mode. */
  publicKeyId: 'PUB_KEY_ID_0119000000012025SANDBOX000000001',
});

export interface SandboxPayKeys {
  merchantPrivateKeyPem: string;
  merchantPublicKeyPem: string;
  platformPrivateKeyPem: string;
  platformPublicKeyPem: string;
}

let cached: SandboxPayKeys | undefined;

export function sandboxPayKeys(): SandboxPayKeys {
  const read = (name: string) => readFileSync(path.join(SANDBOX_KEYS_DIR, name), 'utf8');
  cached ??= Object.freeze({
    merchantPrivateKeyPem: read('merchant_private.pem'),
    merchantPublicKeyPem: read('merchant_public.pem'),
    platformPrivateKeyPem: read('platform_private.pem'),
    platformPublicKeyPem: read('platform_public.pem'),
  });
  return cached;
}

/** A fixed APIv3 key (32 ASCII characters) derived from the AppID, so sandbox notifications stay decryptable across restarts. */
export function sandboxApiV3Key(appId: string): string {
  return createHash('sha256').update(`sandbox-apiv3:${appId}`).digest('hex').slice(0, 32);
}
