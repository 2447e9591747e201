#!/usr/bin/env python3
"""Regenerates the RS256/ES256 test vectors in src/jwt/vectors.rs (needs `cryptography`).

The private keys are thrown away; only public keys and signed tokens are kept. Claims are
fixed so the tests can pin the clock: iat 1700000000, nbf 1700000000, exp 1700003600.
"""
import base64, json
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def seg(obj) -> str:
    return b64(json.dumps(obj, separators=(",", ":")).encode())


CLAIMS = {"iss": "https://issuer.example", "aud": ["api"], "sub": "user-42",
          "iat": 1700000000, "nbf": 1700000000, "exp": 1700003600, "tenant": "acme"}


def pem(key) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
nums = rsa_key.public_key().public_numbers()
n = nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big")
e = nums.e.to_bytes((nums.e.bit_length() + 7) // 8, "big")
signing_input = seg({"alg": "RS256", "typ": "JWT", "kid": "rsa1"}) + "." + seg(CLAIMS)
sig = rsa_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
print(f'pub const RSA_PEM: &str = "{pem(rsa_key)}";')
print(f'pub const RSA_PKCS1_PEM: &str = "{rsa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1).decode()}";')
print(f'pub const RSA_N: &str = "{b64(n)}";')
print(f'pub const RSA_E: &str = "{b64(e)}";')
print(f'pub const RS256_TOKEN: &str = "{signing_input}.{b64(sig)}";')

ec_key = ec.generate_private_key(ec.SECP256R1())
pn = ec_key.public_key().public_numbers()
signing_input = seg({"alg": "ES256", "typ": "JWT", "kid": "ec1"}) + "." + seg(CLAIMS)
r, s = decode_dss_signature(ec_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
print(f'pub const EC_PEM: &str = "{pem(ec_key)}";')
print(f'pub const EC_X: &str = "{b64(pn.x.to_bytes(32, "big"))}";')
print(f'pub const EC_Y: &str = "{b64(pn.y.to_bytes(32, "big"))}";')
print(f'pub const ES256_TOKEN: &str = "{signing_input}.{b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))}";')
