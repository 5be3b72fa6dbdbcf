// Just enough JWT for the authentication example: compact tokens signed with HMAC-SHA256 ("HS256")
// and a shared secret, using node:crypto only. Use a maintained library (and asymmetric keys where
// the issuer is another service) in a real application.
import { createHmac, timingSafeEqual } from 'node:crypto';

export interface Claims {
  /** Whom the token is about. */
  sub: string;
  /** Expiry, in seconds since the epoch. */
  exp?: number;
  /** Not valid before, in seconds since the epoch. */
  nbf?: number;
  [claim: string]: unknown;
}

const base64url = (data: string | Buffer): string => Buffer.from(data).toString('base64url');

function signature(signingInput: string, secret: string): Buffer {
  return createHmac('sha256', secret).update(signingInput).digest();
}

/** Signs `claims` into a compact JWT. */
export function signJwt(claims: Claims, secret: string): string {
  const input = `${base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${base64url(JSON.stringify(claims))}`;
  return `${input}.${base64url(signature(input, secret))}`;
}

/** Returns the claims of a valid token; throws an Error saying why a token is not valid. */
export function verifyJwt(token: string, secret: string, nowSeconds = Date.now() / 1000): Claims {
  const parts = token.split('.');
  if (parts.length !== 3) throw new Error('not a compact JWT');
  const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];
  const header = JSON.parse(Buffer.from(headerPart, 'base64url').toString('utf8')) as { alg?: unknown };
  // Accept only the algorithm we sign with: never "none", never a downgrade chosen by the token.
  if (header.alg !== 'HS256') throw new Error(`unexpected algorithm ${JSON.stringify(header.alg)}`);
  const expected = signature(`${headerPart}.${payloadPart}`, secret);
  const actual = Buffer.from(signaturePart, 'base64url');
  if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) throw new Error('bad signature');
  const claims = JSON.parse(Buffer.from(payloadPart, 'base64url').toString('utf8')) as Claims;
  if (claims === null || typeof claims !== 'object' || typeof claims.sub !== 'string') throw new Error('no subject');
  if (typeof claims.exp === 'number' && nowSeconds >= claims.exp) throw new Error('expired');
  if (typeof claims.nbf === 'number' && nowSeconds < claims.nbf) throw new Error('not valid yet');
  return claims;
}
