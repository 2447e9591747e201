//! RS256/ES256 test vectors made by `testdata/gen_vectors.py` (private keys discarded).
//! Claims: iss https://issuer.example, aud [api], sub user-42, nbf 1700000000, exp 1700003600.

pub const RSA_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAq6dIY7nrJBIoHOmk7eOK
98vFtU0JYMjEDxmqs+PRhS0TsbRHSUJGYcKIygW2CghvbjtGdwBadmzUL5O1FCKn
W1IgIuKqXNU3IMgb/SSLIYh1YZMcrbOqCFd6+gmrv6Aas9Z4f78PwJuenBIcuy42
JdBlgtl2U5qjIYs4BwwfhDn0UKyqEYTsj0VxzcEv6p5c02j989HdGVnSwhpLXiti
qLWGTHAJnKZ6URFxKDYFo4KlE6IpoyFakl+BsfuyKz6T+QMt85Trfn7ebCLTmgvv
k6byeWpn+X/zbme0vVJfzXg2vkVBMyEFnw+nbhB5iP9d6y2Nw3cb/64tcMY1eMvy
mwIDAQAB
-----END PUBLIC KEY-----
";
pub const RSA_PKCS1_PEM: &str = "-----BEGIN RSA PUBLIC KEY-----
MIIBCgKCAQEAq6dIY7nrJBIoHOmk7eOK98vFtU0JYMjEDxmqs+PRhS0TsbRHSUJG
YcKIygW2CghvbjtGdwBadmzUL5O1FCKnW1IgIuKqXNU3IMgb/SSLIYh1YZMcrbOq
CFd6+gmrv6Aas9Z4f78PwJuenBIcuy42JdBlgtl2U5qjIYs4BwwfhDn0UKyqEYTs
j0VxzcEv6p5c02j989HdGVnSwhpLXitiqLWGTHAJnKZ6URFxKDYFo4KlE6IpoyFa
kl+BsfuyKz6T+QMt85Trfn7ebCLTmgvvk6byeWpn+X/zbme0vVJfzXg2vkVBMyEF
nw+nbhB5iP9d6y2Nw3cb/64tcMY1eMvymwIDAQAB
-----END RSA PUBLIC KEY-----
";
pub const RSA_N: &str = "q6dIY7nrJBIoHOmk7eOK98vFtU0JYMjEDxmqs-PRhS0TsbRHSUJGYcKIygW2CghvbjtGdwBadmzUL5O1FCKnW1IgIuKqXNU3IMgb_SSLIYh1YZMcrbOqCFd6-gmrv6Aas9Z4f78PwJuenBIcuy42JdBlgtl2U5qjIYs4BwwfhDn0UKyqEYTsj0VxzcEv6p5c02j989HdGVnSwhpLXitiqLWGTHAJnKZ6URFxKDYFo4KlE6IpoyFakl-BsfuyKz6T-QMt85Trfn7ebCLTmgvvk6byeWpn-X_zbme0vVJfzXg2vkVBMyEFnw-nbhB5iP9d6y2Nw3cb_64tcMY1eMvymw";
pub const RSA_E: &str = "AQAB";
pub const RS256_TOKEN: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InJzYTEifQ.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwiYXVkIjpbImFwaSJdLCJzdWIiOiJ1c2VyLTQyIiwiaWF0IjoxNzAwMDAwMDAwLCJuYmYiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMzYwMCwidGVuYW50IjoiYWNtZSJ9.JR_GFXvs8q_XAKm4t0fF7xCSVC9aMMcMid7r0G0C7CeNy5kE9lRjHUyAweRx3uGZwrI0k-o6SFMQL1VYJNGrgBRBYFBo34Id7tZq1okkFANZ_dNOcwDyYoUQv3lUO0iSulCxS3o_1_jBp18wjdawotSinbxJVe3ZAtm7Nnt2mJ2W-CgN1Esh4-7AUFD7dPUogdHmW85rQRkASF1R2Wm6zOgi9HS9i_K7arpRWT7IL_rfc5vfxaWM2OS4pDZ4G5hd8kgEt98SqEMbGCDnnq5Oi3zFvJy2W8tKrT7k5zatsgRMqDTvMsdDDoTzwl3J1--V6G-tfdul2Q9iAKBE4I1TRA";
pub const EC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEScPDoiZRLQAPXCldqCr+bzOYCUl3
C7kiWpJRk6WUJJT8pN5UKZTiihuJwU1FMkarHswSrVOFGC4R004WXzVaqg==
-----END PUBLIC KEY-----
";
pub const EC_X: &str = "ScPDoiZRLQAPXCldqCr-bzOYCUl3C7kiWpJRk6WUJJQ";
pub const EC_Y: &str = "_KTeVCmU4oobicFNRTJGqx7MEq1ThRguEdNOFl81Wqo";
pub const ES256_TOKEN: &str = "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImVjMSJ9.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwiYXVkIjpbImFwaSJdLCJzdWIiOiJ1c2VyLTQyIiwiaWF0IjoxNzAwMDAwMDAwLCJuYmYiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMzYwMCwidGVuYW50IjoiYWNtZSJ9.xKtsM41TaPMzINp1GT_I-8J-8F930Y-_Hr6_0EXPvub1bplBz3GrELo8eh8ylqceBekbdHwnBoLYRxjAenoBZg";
