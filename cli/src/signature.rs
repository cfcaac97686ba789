//! Checking that a webhook is genuine, by the documented algorithms. Pure
//! functions of the headers, the raw body, the secret and `now`.

use hmac::{Hmac, Mac};

/// Why a webhook's signature was refused (answered 401). Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Stripe: `Stripe-Signature: t=<unix secs>,v1=<hex>[,v1=<hex>…]`, where v1 is
/// HMAC-SHA256 of `"<t>.<raw body>"` keyed with the endpoint secret (`whsec_…`,
/// used whole). A timestamp more than `tolerance_secs` from `now` is refused
/// even when the signature matches: that is a replay.
pub fn stripe(header: Option<&str>, body: &[u8], secret: &[u8], tolerance_secs: u64, now: i64) -> Result<(), Refused> {
    let header = header.ok_or_else(|| Refused("missing Stripe-Signature header".into()))?;
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => sigs.push(v),
            _ => {}
        }
    }
    let t = t.ok_or_else(|| Refused("Stripe-Signature has no timestamp t=".into()))?;
    if sigs.is_empty() {
        return Err(Refused("Stripe-Signature has no v1 signature".into()));
    }
    let mut signed = Vec::with_capacity(body.len() + 12);
    signed.extend_from_slice(t.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    if !sigs.iter().any(|s| verify_sha256(secret, &signed, s)) {
        return Err(Refused("Stripe-Signature does not match the body".into()));
    }
    let age = now.saturating_sub(t);
    if age.unsigned_abs() > tolerance_secs {
        return Err(Refused(format!("Stripe-Signature timestamp is {age} s from now; the tolerance is {tolerance_secs} s (a replay?)")));
    }
    Ok(())
}

/// Intercom: `X-Hub-Signature: sha1=<hex>`, HMAC-SHA1 of the raw body keyed
/// with the app's client secret.
pub fn intercom(header: Option<&str>, body: &[u8], secret: &[u8]) -> Result<(), Refused> {
    let header = header.ok_or_else(|| Refused("missing X-Hub-Signature header".into()))?;
    let hex = header.trim().strip_prefix("sha1=").ok_or_else(|| Refused("X-Hub-Signature must start with sha1=".into()))?;
    if verify_sha1(secret, body, hex) {
        Ok(())
    } else {
        Err(Refused("X-Hub-Signature does not match the body".into()))
    }
}

/// A generic route's shared secret: the header's value must equal it
/// (compared in constant time).
pub fn shared(header_name: &str, value: Option<&str>, secret: &[u8]) -> Result<(), Refused> {
    let value = value.ok_or_else(|| Refused(format!("missing {header_name} header")))?;
    // Compare MACs of both sides: constant time whatever the lengths.
    let mac = |x: &[u8]| {
        let mut m = <Hmac<sha2::Sha256>>::new_from_slice(b"trackcore-shared-secret").expect("any key length");
        m.update(x);
        m.finalize().into_bytes()
    };
    let expected = mac(secret);
    let mut m = <Hmac<sha2::Sha256>>::new_from_slice(b"trackcore-shared-secret").expect("any key length");
    m.update(value.as_bytes());
    m.verify_slice(&expected).map_err(|_| Refused(format!("{header_name} does not hold the shared secret")))
}

/// Whether `hex` is the HMAC of `data` under `key` (constant-time compare).
macro_rules! verify_with {
    ($name:ident, $digest:ty) => {
        fn $name(key: &[u8], data: &[u8], hex: &str) -> bool {
            let Some(expected) = from_hex(hex) else { return false };
            let Ok(mut mac) = <Hmac<$digest>>::new_from_slice(key) else { return false };
            mac.update(data);
            mac.verify_slice(&expected).is_ok()
        }
    };
}
verify_with!(verify_sha256, sha2::Sha256);
verify_with!(verify_sha1, sha1::Sha1);

fn from_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim().as_bytes();
    if s.len() % 2 != 0 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.chunks(2).map(|p| Some(digit(p[0])? << 4 | digit(p[1])?)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hmac_hex_sha256(key: &[u8], data: &[u8]) -> String {
        let mut m = <Hmac<sha2::Sha256>>::new_from_slice(key).unwrap();
        m.update(data);
        m.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    fn sha1_hex(key: &[u8], data: &[u8]) -> String {
        let mut m = <Hmac<sha1::Sha1>>::new_from_slice(key).unwrap();
        m.update(data);
        m.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn stripe_accepts_a_fresh_signature_and_refuses_forged_stale_and_missing() {
        let (body, key, t) = (br#"{"id":"evt_1"}"#, b"whsec_test", 1_700_000_000i64);
        let sig = hmac_hex_sha256(key, format!("{t}.{}", std::str::from_utf8(body).unwrap()).as_bytes());
        let header = format!("t={t},v1={sig},v0=ignored");
        assert_eq!(stripe(Some(&header), body, key, 300, t + 299), Ok(()));
        assert!(stripe(Some(&header), body, key, 300, t + 301).unwrap_err().0.contains("tolerance"));
        assert!(stripe(Some(&header), b"{}", key, 300, t).unwrap_err().0.contains("does not match"));
        assert!(stripe(Some(&header), body, b"whsec_other", 300, t).is_err());
        assert!(stripe(None, body, key, 300, t).unwrap_err().0.contains("missing"));
        // A second, rotated signature is enough.
        let two = format!("t={t},v1={},v1={sig}", "00".repeat(32));
        assert_eq!(stripe(Some(&two), body, key, 300, t), Ok(()));
    }

    #[test]
    fn intercom_checks_sha1_of_the_raw_body() {
        let body = br#"{"topic":"ping"}"#;
        let good = format!("sha1={}", sha1_hex(b"client-secret", body));
        assert_eq!(intercom(Some(&good), body, b"client-secret"), Ok(()));
        assert!(intercom(Some(&good), body, b"other").is_err());
        assert!(intercom(Some(&good[5..]), body, b"client-secret").is_err());
        assert!(intercom(None, body, b"client-secret").is_err());
    }

    #[test]
    fn shared_secret_must_match_exactly() {
        assert_eq!(shared("X-Token", Some("s3cret"), b"s3cret"), Ok(()));
        assert!(shared("X-Token", Some("s3cre"), b"s3cret").is_err());
        assert!(shared("X-Token", None, b"s3cret").is_err());
    }
}
