import t from 'tap';
import { constants, createDecipheriv, createPublicKey, generateKeyPairSync, privateDecrypt, verify, X509Certificate } from 'node:crypto';
import {
  PayDecryptError,
  PayVerifyError,
  appPaySign,
  assertApiV3Key,
  buildAuthorization,
  buildRequestMessage,
  buildRequestPaymentParams,
  buildVerifyMessage,
  createNonce,
  createPayVerifier,
  decryptNotificationResource,
  decryptSensitiveField,
  encryptNotificationResource,
  encryptSensitiveField,
  jsapiPaySign,
  readPayHeaders,
  signRequest,
  signRsaSha256,
  type PaySignedMessage,
} from '../src/wechat/pay/crypto.ts';
import { fixtureJson } from './helpers.ts';

const signVectors = fixtureJson('pay-sign-vectors.json');
const notify = fixtureJson('pay-notify-vector.json');
const pubkeyVector = fixtureJson('pay-response-verify-pubkey-vector.json');
const gcm = fixtureJson('pay-aes-gcm-vectors.json');

const DOC_KEY: string = signVectors.test_private_key_pem;
const GO_KEY: string = signVectors.wechatpay_go_signer.private_key_pem;
const CERT_SERIAL = 'D7CE59D1F522D701';
const PUB_KEY_ID = 'PUB_KEY_ID_0114232019112000000000000000001';

/** The notify vector as a verify() input. */
function notifyMessage(over: Partial<PaySignedMessage> = {}): PaySignedMessage {
  const h = notify.headers;
  return {
    timestamp: h['Wechatpay-Timestamp'],
    nonce: h['Wechatpay-Nonce'],
    signature: h['Wechatpay-Signature'],
    serial: h['Wechatpay-Serial'],
    body: notify.body,
    ...over,
  };
}

function pubkeyMessage(over: Partial<PaySignedMessage> = {}): PaySignedMessage {
  return {
    timestamp: pubkeyVector.wechatpay_timestamp,
    nonce: pubkeyVector.wechatpay_nonce,
    signature: pubkeyVector.wechatpay_signature,
    serial: PUB_KEY_ID,
    body: pubkeyVector.body,
    ...over,
  };
}

const certVerifier = (now = notify.now_unix * 1000) =>
  createPayVerifier({ platformCertificates: { [CERT_SERIAL]: notify.wechatpay_certificate_pem }, now: () => now });
const pubkeyVerifier = (now = Number(pubkeyVector.wechatpay_timestamp) * 1000) =>
  createPayVerifier({ publicKeys: { [PUB_KEY_ID]: pubkeyVector.wechatpay_public_key_pem }, now: () => now });

/** tap matches thrown errors against an object pattern (a bare function would be taken as a class). */
const rejects = (t: Tap, fn: () => unknown, reason: PayVerifyError['reason'], msg: string) => t.throws(fn, { name: 'PayVerifyError', reason }, msg);
type Tap = Pick<typeof t, 'throws'>;

function flipByteB64(b64: string, index: number): string {
  const raw = Buffer.from(b64, 'base64');
  const i = index < 0 ? raw.length + index : index;
  raw[i] = raw[i]! ^ 0x01;
  return raw.toString('base64');
}

// ------------------------------------------------------------------------------------------------- request signing

t.test('pay › request signing', async (t) => {
  t.test('wechatpay-go signer vector: RSA-SHA256 PKCS#1 v1.5 signature matches byte for byte', async (t) => {
    const v = signVectors.wechatpay_go_signer;
    t.equal(signRsaSha256(v.message, GO_KEY), v.signature);
  });

  t.test('JSAPI prepay POST: 5-line message and the signature match the vector exactly', async (t) => {
    const v = signVectors.request_signature;
    const message = buildRequestMessage(v.method, v.url, v.timestamp, v.nonce_str, v.body);
    t.equal(message, v.message.replace('<body>', v.body));
    t.ok(message.endsWith(`${v.body}\n`), 'the body line ends in \\n too');
    t.equal(signRsaSha256(message, DOC_KEY), v.signature);
  });

  t.test('GET message has an empty body line: it ends in "\\n\\n"', async (t) => {
    const v = signVectors.authorization_header_layout;
    t.equal(buildRequestMessage('GET', '/v3/certificates', 1624523846, 'A1B2C3D4E5F6G7'), v.get_message_example);
    t.equal(buildRequestMessage('get', '/v3/certificates', '1624523846', 'A1B2C3D4E5F6G7', ''), v.get_message_example, 'method upper-cased');
    t.equal(
      buildRequestMessage('GET', '/v3/pay/transactions/out-trade-no/123?mchid=1230000109', '1554208460', 'N'),
      'GET\n/v3/pay/transactions/out-trade-no/123?mchid=1230000109\n1554208460\nN\n\n',
      'the query string is part of the signed URL',
    );
  });

  t.test('documented pitfalls are refused: ms timestamps, full URLs, GET with a body, newlines', async (t) => {
    t.throws(() => buildRequestMessage('GET', '/v3/certificates', Date.now(), 'N'), TypeError, 'millisecond timestamp');
    t.throws(() => buildRequestMessage('GET', 'https://api.mch.weixin.qq.com/v3/certificates', 1, 'N'), TypeError, 'host in URL');
    t.throws(() => buildRequestMessage('GET', '/v3/certificates', 1, 'N', '{}'), TypeError, 'GET with body');
    t.throws(() => buildRequestMessage('POST', '/v3/x', 1, 'N\r'), TypeError, 'CR in nonce');
    t.throws(() => buildRequestMessage('POST', '/v3/x', 1, ''), TypeError, 'empty nonce');
  });

  t.test('Authorization header: scheme and the five quoted parameters', async (t) => {
    const h = buildAuthorization({ mchid: '1900000001', serialNo: 'ABC123', nonce: 'N0NCE', timestamp: 1554208460, signature: 'c2ln+/==' });
    t.equal(h, 'WECHATPAY2-SHA256-RSA2048 mchid="1900000001",nonce_str="N0NCE",signature="c2ln+/==",timestamp="1554208460",serial_no="ABC123"');
    // Same parameter set as the wechatpay-go layout (order is free).
    const names = (s: string) => [...s.matchAll(/(\w+)="/g)].map((m) => m[1]).sort();
    t.same(names(h), names(signVectors.authorization_header_layout.example));
    t.throws(() => buildAuthorization({ mchid: '1"', serialNo: 'A', nonce: 'N', timestamp: 1, signature: 'S' }), TypeError, 'quote refused');
  });

  t.test('signRequest: the Authorization signature verifies against the message with the public half', async (t) => {
    const body = signVectors.request_signature.body as string;
    const r = signRequest({ method: 'POST', pathWithQuery: '/v3/pay/transactions/jsapi', body, mchid: '1900007291', serialNo: 'SERIAL', privateKey: DOC_KEY });
    t.match(r.timestamp, /^\d{10}$/);
    t.match(r.nonce, /^[0-9A-F]{32}$/);
    t.ok(r.authorization.includes(`signature="${r.signature}"`));
    t.ok(verify('sha256', Buffer.from(r.message), createPublicKey(DOC_KEY), Buffer.from(r.signature, 'base64')));
    const fixed = signRequest({ method: 'POST', pathWithQuery: '/v3/pay/transactions/jsapi', body, mchid: '1900007291', serialNo: 'S', privateKey: DOC_KEY, timestamp: '1554208460', nonce: '593BEC0C930BF1AFEB40B4A08C8FB242' });
    t.equal(fixed.signature, signVectors.request_signature.signature, 'fixed timestamp and nonce reproduce the vector');
  });

  t.test('createNonce: 32 characters from the CSPRNG, different each time', async (t) => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const n = createNonce();
      t.equal(n.length, 32);
      seen.add(n);
    }
    t.equal(seen.size, 200);
  });

  t.test('a non-RSA private key is refused', async (t) => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    t.throws(() => signRsaSha256('x', privateKey), TypeError);
  });
});

// ------------------------------------------------------------------------------------------------- paySign

t.test('pay › paySign', async (t) => {
  const v = signVectors.jsapi_or_miniprogram_paySign;

  t.test('mini program / JSAPI paySign matches the official test data byte for byte', async (t) => {
    t.equal(jsapiPaySign({ appId: v.appId, timeStamp: v.timeStamp, nonceStr: v.nonceStr, package: v.package }, DOC_KEY), v.paySign);
    t.equal(signRsaSha256(v.message, DOC_KEY), v.paySign, 'the 4-line message with trailing \\n');
  });

  t.test('APP variant signs the bare prepay_id and matches the official test data', async (t) => {
    const a = signVectors.app_sign;
    const prepayId = (v.package as string).replace(/^prepay_id=/, '');
    t.equal(appPaySign({ appId: v.appId, timeStamp: v.timeStamp, nonceStr: v.nonceStr, prepayId }, DOC_KEY), a.sign);
    t.equal(signRsaSha256(a.message, DOC_KEY), a.sign);
  });

  t.test('buildRequestPaymentParams gives exactly the wx.requestPayment fields and the vector paySign', async (t) => {
    const p = buildRequestPaymentParams(v.appId, 'wx201410272009395522657a690389285100', DOC_KEY, { timeStamp: v.timeStamp, nonceStr: v.nonceStr });
    t.same(p, { timeStamp: v.timeStamp, nonceStr: v.nonceStr, package: v.package, signType: 'RSA', paySign: v.paySign });
    t.same(Object.keys(p).sort(), Object.keys(fixtureJson('pay-requestPayment-miniprogram.json')).sort(), 'same keys as the official wx.requestPayment sample');
  });

  t.test('buildRequestPaymentParams defaults: fresh second timestamp, 32-char nonce, verifiable paySign', async (t) => {
    const p = buildRequestPaymentParams('wx0sandbox0000001', 'wx2024', DOC_KEY);
    t.match(p.timeStamp, /^\d{10}$/);
    t.ok(Math.abs(Number(p.timeStamp) - Date.now() / 1000) < 5);
    t.equal(p.nonceStr.length, 32);
    const msg = `wx0sandbox0000001\n${p.timeStamp}\n${p.nonceStr}\nprepay_id=wx2024\n`;
    t.ok(verify('sha256', Buffer.from(msg), createPublicKey(DOC_KEY), Buffer.from(p.paySign, 'base64')));
    t.throws(() => buildRequestPaymentParams('wx', 'prepay_id=wx2024', DOC_KEY), TypeError, 'double prefix refused');
  });
});

// ------------------------------------------------------------------------------------------------- verification

t.test('pay › notification › verification', async (t) => {
  t.test('platform-certificate mode: the wechatpay-go notify vector verifies with its certificate', async (t) => {
    const r = certVerifier().verify(notifyMessage());
    t.same(r, { serial: CERT_SERIAL, mode: 'platform_certificate', timestamp: notify.now_unix });
  });

  t.test('the raw body may be a Buffer (bytes as received)', async (t) => {
    t.ok(certVerifier().verify(notifyMessage({ body: Buffer.from(notify.body, 'utf8') })));
  });

  t.test('certificate serials match case-insensitively', async (t) => {
    t.ok(certVerifier().verify(notifyMessage({ serial: CERT_SERIAL.toLowerCase() })));
  });

  t.test('public-key mode: a PUB_KEY_ID_ serial verifies the response with the WeChat Pay public key', async (t) => {
    const r = pubkeyVerifier().verify(pubkeyMessage());
    t.equal(r.mode, 'public_key');
    t.equal(r.serial, PUB_KEY_ID);
  });

  t.test('during a migration one verifier selects the key by the Wechatpay-Serial prefix', async (t) => {
    let now = notify.now_unix * 1000;
    const v = createPayVerifier({
      publicKeys: { [PUB_KEY_ID]: pubkeyVector.wechatpay_public_key_pem },
      platformCertificates: { [CERT_SERIAL]: notify.wechatpay_certificate_pem },
      now: () => now,
    });
    t.equal(v.verify(notifyMessage()).mode, 'platform_certificate');
    now = Number(pubkeyVector.wechatpay_timestamp) * 1000;
    t.equal(v.verify(pubkeyMessage()).mode, 'public_key');
    t.same([...v.serials].sort(), [CERT_SERIAL, PUB_KEY_ID].sort());
    // The notify signature presented under the public-key ID goes to the public key, and fails.
    now = notify.now_unix * 1000;
    rejects(t, () => v.verify(notifyMessage({ serial: PUB_KEY_ID })), 'bad_signature', 'no cross-mode fallback');
  });

  t.test('the go signer test key is the certificate\'s key: re-signing the notify message reproduces the header', async (t) => {
    const h = notify.headers;
    t.equal(signRsaSha256(buildVerifyMessage(h['Wechatpay-Timestamp'], h['Wechatpay-Nonce'], notify.body), GO_KEY), h['Wechatpay-Signature']);
  });

  t.test('a stale timestamp is rejected (window is |now − ts| < 300 s)', async (t) => {
    const ts = notify.now_unix * 1000;
    t.ok(certVerifier(ts + 299_000).verify(notifyMessage()), '299 s late accepted');
    t.ok(certVerifier(ts - 299_000).verify(notifyMessage()), '299 s early accepted');
    rejects(t, () => certVerifier(ts + 300_000).verify(notifyMessage()), 'stale_timestamp', '300 s late rejected');
    rejects(t, () => certVerifier(ts - 301_000).verify(notifyMessage()), 'stale_timestamp', 'from the future rejected');
    rejects(t, () => certVerifier(Date.now()).verify(notifyMessage()), 'stale_timestamp', 'a 2021 vector replayed today');
    rejects(t, () => certVerifier().verify(notifyMessage({ timestamp: `${notify.now_unix}000` })), 'stale_timestamp', 'millisecond timestamp');
    rejects(t, () => certVerifier().verify(notifyMessage({ timestamp: ' 1624523846' })), 'stale_timestamp', 'malformed timestamp');
    const wide = createPayVerifier({ platformCertificates: { [CERT_SERIAL]: notify.wechatpay_certificate_pem }, maxSkewSeconds: 600, now: () => ts + 500_000 });
    t.ok(wide.verify(notifyMessage()), 'maxSkewSeconds is configurable');
  });

  t.test('an unknown serial is rejected, in either mode', async (t) => {
    rejects(t, () => certVerifier().verify(notifyMessage({ serial: '5157F09EFDC096DE15EBE81A47057A7232F1B8E1' })), 'unknown_serial', 'unknown certificate serial');
    rejects(t, () => certVerifier().verify(notifyMessage({ serial: 'PUB_KEY_ID_0000' })), 'unknown_serial', 'public-key ID with only certificates configured');
    rejects(t, () => pubkeyVerifier().verify(pubkeyMessage({ serial: 'PUB_KEY_ID_0114232019112000000000000000002' })), 'unknown_serial', 'other public-key ID');
    rejects(t, () => pubkeyVerifier().verify(pubkeyMessage({ serial: CERT_SERIAL })), 'unknown_serial', 'certificate serial with only a public key configured');
  });

  t.test('a body changed by one byte is rejected', async (t) => {
    const body = notify.body as string;
    const i = body.indexOf('签约成功');
    rejects(t, () => certVerifier().verify(notifyMessage({ body: body.replace('"payscore"', '"payscorf"') })), 'bad_signature', 'one ASCII byte');
    rejects(t, () => certVerifier().verify(notifyMessage({ body: body.slice(0, i) + '签约失败' + body.slice(i + 4) })), 'bad_signature', 'one CJK character');
    rejects(t, () => certVerifier().verify(notifyMessage({ body: `${body}\n` })), 'bad_signature', 'a trailing newline');
    rejects(t, () => certVerifier().verify(notifyMessage({ body: JSON.stringify(JSON.parse(body), null, 1) })), 'bad_signature', 're-serialised JSON');
    rejects(t, () => pubkeyVerifier().verify(pubkeyMessage({ body: pubkeyVector.body.replace('JyC91EIz1', 'JyC91EIz2') })), 'bad_signature', 'public-key mode too');
    rejects(t, () => certVerifier().verify(notifyMessage({ nonce: 'EcZ9Cmy4Xyx1i6RlJQzLcCyEqDa26NBZ' })), 'bad_signature', 'a different nonce');
  });

  t.test('a WECHATPAY/SIGNTEST/ probe signature is rejected and flagged as a probe', async (t) => {
    const sig = `WECHATPAY/SIGNTEST/${notify.headers['Wechatpay-Signature']}`;
    t.throws(() => certVerifier().verify(notifyMessage({ signature: sig })), { name: 'PayVerifyError', reason: 'bad_signature', probe: true });
    t.throws(() => certVerifier().verify(notifyMessage({ signature: flipByteB64(notify.headers['Wechatpay-Signature'], 7) })), { name: 'PayVerifyError', reason: 'bad_signature', probe: false }, 'an ordinary bad signature is not a probe');
    rejects(t, () => certVerifier().verify(notifyMessage({ signature: 'not base64!' })), 'bad_signature', 'non-base64 signature');
  });

  t.test('failures are PayVerifyError instances carrying a reason', async (t) => {
    const err = (() => {
      try {
        certVerifier(0).verify(notifyMessage());
      } catch (e) {
        return e;
      }
    })();
    t.ok(err instanceof PayVerifyError);
    t.equal((err as PayVerifyError).reason, 'stale_timestamp');
  });

  t.test('missing headers are rejected', async (t) => {
    for (const k of ['timestamp', 'nonce', 'signature', 'serial'] as const) {
      rejects(t, () => certVerifier().verify(notifyMessage({ [k]: undefined })), 'missing_header', `no ${k}`);
      rejects(t, () => certVerifier().verify(notifyMessage({ [k]: '' })), 'missing_header', `empty ${k}`);
    }
  });

  t.test('readPayHeaders reads Wechatpay-* in any case and ignores repeated headers', async (t) => {
    const h = readPayHeaders({ 'wechatpay-timestamp': '1', 'Wechatpay-Nonce': 'n', 'wechatpay-signature': ['a', 'b'], 'WECHATPAY-SERIAL': 's' });
    t.same(h, { timestamp: '1', nonce: 'n', signature: undefined, serial: 's' });
    const lower = Object.fromEntries(Object.entries(notify.headers as Record<string, string>).map(([k, v]) => [k.toLowerCase(), v]));
    t.ok(certVerifier().verify({ ...readPayHeaders(lower), body: notify.body }), 'Fastify-style lower-case headers');
  });

  t.test('configuration mistakes fail at construction', async (t) => {
    t.throws(() => createPayVerifier({}), TypeError, 'no keys');
    t.throws(() => createPayVerifier({ publicKeys: { '0114232019112': pubkeyVector.wechatpay_public_key_pem } }), TypeError, 'public-key ID without PUB_KEY_ID_');
    t.throws(() => createPayVerifier({ platformCertificates: { ABCDEF: notify.wechatpay_certificate_pem } }), TypeError, 'serial does not match the certificate');
    t.throws(() => createPayVerifier({ platformCertificates: { [CERT_SERIAL]: pubkeyVector.wechatpay_public_key_pem } }), 'not a certificate');
    t.equal(new X509Certificate(notify.wechatpay_certificate_pem).serialNumber, CERT_SERIAL);
  });
});

// ------------------------------------------------------------------------------------------------- AES-GCM

t.test('pay › notification › AEAD_AES_256_GCM decryption', async (t) => {
  for (const v of gcm.vectors as Array<{ apiv3_key: string; key_bytes: number; associated_data: string; nonce: string; ciphertext: string; plaintext: string }>) {
    t.test(`vector with a ${v.key_bytes}-byte key decrypts to ${JSON.stringify(v.plaintext)}`, async (t) => {
      t.equal(decryptNotificationResource({ ciphertext: v.ciphertext, associated_data: v.associated_data, nonce: v.nonce }, v.apiv3_key), v.plaintext);
    });
  }

  t.test('the notify vector resource decrypts to the expected payload', async (t) => {
    const resource = JSON.parse(notify.body).resource;
    const plain = decryptNotificationResource(resource, notify.apiv3_key);
    t.equal(plain, notify.expected_plaintext);
    t.equal(JSON.parse(plain).out_contract_code, '21640bdbd08e473e828f3206a2741c6e');
  });

  const v32 = gcm.vectors[0];
  const base = { ciphertext: v32.ciphertext as string, associated_data: v32.associated_data as string, nonce: v32.nonce as string };
  const failsAuth = { name: 'PayDecryptError', reason: 'auth_failed' };

  t.test('a tampered ciphertext is rejected (GCM tag checked)', async (t) => {
    t.throws(() => decryptNotificationResource({ ...base, ciphertext: flipByteB64(base.ciphertext, 0) }, v32.apiv3_key), failsAuth);
    const resource = JSON.parse(notify.body).resource;
    t.throws(() => decryptNotificationResource({ ...resource, ciphertext: flipByteB64(resource.ciphertext, 10) }, notify.apiv3_key), failsAuth, 'notify vector too');
  });

  t.test('a tampered tag is rejected', async (t) => {
    t.throws(() => decryptNotificationResource({ ...base, ciphertext: flipByteB64(base.ciphertext, -1) }, v32.apiv3_key), failsAuth);
  });

  t.test('wrong AAD, empty AAD, wrong nonce and wrong key are rejected', async (t) => {
    t.throws(() => decryptNotificationResource({ ...base, associated_data: 'associatedDatb' }, v32.apiv3_key), failsAuth, 'wrong AAD');
    t.throws(() => decryptNotificationResource({ ...base, associated_data: '' }, v32.apiv3_key), failsAuth, 'empty AAD');
    t.throws(() => decryptNotificationResource({ ciphertext: base.ciphertext, nonce: base.nonce }, v32.apiv3_key), failsAuth, 'absent AAD');
    t.throws(() => decryptNotificationResource({ ...base, nonce: 'uluk4a9R25RX' }, v32.apiv3_key), failsAuth, 'wrong nonce');
    t.throws(() => decryptNotificationResource(base, 'b7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb'), failsAuth, 'wrong 32-byte key');
  });

  t.test('the wechatpay-node-v3@2.2.1 bug is absent: update() alone would have returned the plaintext', async (t) => {
    // What 2.2.1's decipher_gcm does: setAuthTag + update, never final(). With the tag flipped it still "works".
    const raw = Buffer.from(flipByteB64(base.ciphertext, -1), 'base64');
    const d = createDecipheriv('aes-256-gcm', Buffer.from(v32.apiv3_key), Buffer.from(base.nonce));
    d.setAuthTag(raw.subarray(-16));
    d.setAAD(Buffer.from(base.associated_data));
    t.equal(d.update(raw.subarray(0, -16)).toString('utf8'), 'message', 'without final() the forgery decrypts');
    t.throws(() => d.final(), 'final() is what checks the tag');
    t.throws(() => decryptNotificationResource({ ...base, ciphertext: raw.toString('base64') }, v32.apiv3_key), failsAuth, 'ours calls final()');
  });

  t.test('failures are PayDecryptError instances carrying a reason', async (t) => {
    const err = (() => {
      try {
        decryptNotificationResource({ ...base, associated_data: 'x' }, v32.apiv3_key);
      } catch (e) {
        return e;
      }
    })();
    t.ok(err instanceof PayDecryptError);
    t.equal((err as PayDecryptError).reason, 'auth_failed');
  });

  t.test('bad keys and malformed input are refused up front', async (t) => {
    const badKey = { name: 'PayDecryptError', reason: 'bad_key' };
    const badInput = { name: 'PayDecryptError', reason: 'bad_input' };
    t.throws(() => decryptNotificationResource(base, 'a7cde1ZJB1kG2e7VfTs3jQza'), badKey, '24-byte key');
    t.throws(() => decryptNotificationResource(base, `${v32.apiv3_key}x`), badKey, '33-byte key (the truncation trap)');
    t.throws(() => decryptNotificationResource(base, ''), badKey, 'empty key');
    t.throws(() => decryptNotificationResource({ ...base, ciphertext: 'AAAA' }, v32.apiv3_key), badInput, 'shorter than the tag');
    t.throws(() => decryptNotificationResource({ ...base, ciphertext: `${base.ciphertext}!` }, v32.apiv3_key), badInput, 'not base64');
    t.throws(() => decryptNotificationResource({ ...base, nonce: '' }, v32.apiv3_key), badInput, 'empty nonce');
    t.throws(() => decryptNotificationResource({ ...base, algorithm: 'AEAD_SM4_GCM' }, v32.apiv3_key), badInput, 'other algorithm');
    t.equal(decryptNotificationResource({ ...base, algorithm: 'AEAD_AES_256_GCM' }, v32.apiv3_key), 'message');
  });

  t.test('encryptNotificationResource round trips with a 32-byte key, empty AAD and UTF-8', async (t) => {
    const key = 'a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb';
    const plain = fixtureJson('pay-transfer-notify-decrypted.json');
    const text = JSON.stringify({ ...plain, note: '现金红包 🧧' });
    const r = encryptNotificationResource(text, key);
    t.equal(r.nonce.length, 12);
    t.equal(r.associated_data, '');
    t.equal(decryptNotificationResource(r, key), text);
    const withAad = encryptNotificationResource('x', key, { associatedData: 'mch_payment', nonce: 'uluk4a9R25RW' });
    t.throws(() => decryptNotificationResource({ ...withAad, associated_data: 'transaction' }, key), failsAuth);
    t.equal(encryptNotificationResource('message', key, { associatedData: 'associatedData', nonce: 'uluk4a9R25RW' }).ciphertext, v32.ciphertext, 'reproduces the Java vector');
  });

  t.test('assertApiV3Key accepts exactly 32 bytes only', async (t) => {
    t.doesNotThrow(() => assertApiV3Key('a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb'));
    t.throws(() => assertApiV3Key('testMchAPIv3Key0'), TypeError, '16-byte test key');
    t.throws(() => assertApiV3Key('a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gbx'), TypeError, '33 bytes');
    t.throws(() => assertApiV3Key('密'.repeat(11)), TypeError, '11 CJK characters = 33 bytes');
    t.throws(() => assertApiV3Key('a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb'.slice(0, 31)), /32 bytes, got 31/, 'message names the length, never the key');
  });
});

// ------------------------------------------------------------------------------------------------- OAEP

t.test('pay › transfer › user_name RSA-OAEP (SHA-1, MGF1-SHA-1)', async (t) => {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pubPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const privPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

  t.test('round trip with a generated key pair; ciphertext is randomised', async (t) => {
    const a = encryptSensitiveField('张三', pubPem);
    const b = encryptSensitiveField('张三', pubPem);
    t.not(a, b);
    t.equal(Buffer.from(a, 'base64').length, 256);
    t.equal(decryptSensitiveField(a, privPem), '张三');
    t.equal(decryptSensitiveField(b, privateKey), '张三');
  });

  t.test('it is OAEP with SHA-1: SHA-256 OAEP and PKCS#1 v1.5 cannot decrypt it', async (t) => {
    const c = Buffer.from(encryptSensitiveField('李四', pubPem), 'base64');
    t.equal(privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, c).toString(), '李四');
    t.throws(() => privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, c));
    t.throws(() => privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_PADDING }, c));
  });

  t.test('a platform certificate PEM works as the encryption key', async (t) => {
    const c = encryptSensitiveField('王五', notify.wechatpay_certificate_pem);
    t.equal(decryptSensitiveField(c, GO_KEY), '王五');
  });
});
