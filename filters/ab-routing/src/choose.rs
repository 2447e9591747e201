//! The choice of a variant: an override first, then the pinning cookie, then the sticky key's
//! hash, then chance. Variants own consecutive ranges of `[0, total_weight)` in config order.

use crate::config::Config;
use crate::hash;
use crate::request::Inputs;

/// Why a variant was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Override,
    Cookie,
    Sticky,
    Random,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// Index into `config.variants`.
    pub variant: usize,
    pub reason: Reason,
    /// Whether to send the pinning cookie (configured, and the client has no usable one).
    pub set_cookie: bool,
}

/// Chooses a variant; `random` is used only when nothing in the request decides.
pub fn choose(config: &Config, inputs: &Inputs, random: u64) -> Choice {
    let named = |name: Option<&str>| name.and_then(|n| config.variants.iter().position(|v| v.name == n));
    // A cookie naming a variant whose weight went to 0 is not honoured: that is how a variant
    // is drained. An explicit override may still pick it.
    let cookie =
        named(inputs.cookie_variant.as_deref()).filter(|i| config.variants.get(*i).is_some_and(|v| v.weight > 0));
    let (variant, reason) = if let Some(i) = named(inputs.override_value.as_deref()) {
        (i, Reason::Override)
    } else if let Some(i) = cookie {
        (i, Reason::Cookie)
    } else if let Some(key) = &inputs.sticky_key {
        (at(config, hash::scale(hash::stable(key), config.total_weight)), Reason::Sticky)
    } else {
        (at(config, hash::scale(random, config.total_weight)), Reason::Random)
    };
    Choice { variant, reason, set_cookie: config.set_cookie.is_some() && cookie.is_none() }
}

/// The variant owning `point` (below `total_weight`).
fn at(config: &Config, point: u64) -> usize {
    let mut end = 0;
    for (i, v) in config.variants.iter().enumerate() {
        end += u64::from(v.weight);
        if point < end {
            return i;
        }
    }
    // Not reached: `point < total_weight`.
    config.variants.iter().rposition(|v| v.weight > 0).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::SplitMix64;

    fn config(weights: &[(&str, u32)], extra: &str) -> Config {
        let variants: Vec<String> =
            weights.iter().map(|(n, w)| format!(r#"{{"name": "{n}", "cluster": "c-{n}", "weight": {w}}}"#)).collect();
        let json = format!(r#"{{"variants": [{}]{extra}}}"#, variants.join(","));
        Config::parse(json.as_bytes()).unwrap()
    }

    fn sticky(key: &str) -> Inputs {
        Inputs { sticky_key: Some(key.as_bytes().to_vec()), ..Inputs::default() }
    }

    /// Share of each variant, in percent, over `n` draws.
    fn shares(config: &Config, n: u32, mut pick: impl FnMut(u32) -> Choice) -> Vec<f64> {
        let mut counts = vec![0u32; config.variants.len()];
        for i in 0..n {
            counts[pick(i).variant] += 1;
        }
        counts.iter().map(|c| f64::from(*c) * 100.0 / f64::from(n)).collect()
    }

    fn assert_close(shares: &[f64], config: &Config) {
        for (share, v) in shares.iter().zip(&config.variants) {
            let want = f64::from(v.weight) * 100.0 / config.total_weight as f64;
            assert!((share - want).abs() <= 1.5, "{}: {share:.2}% instead of {want:.2}%", v.name);
        }
    }

    #[test]
    fn hashed_keys_follow_the_weights() {
        for weights in
            [&[("stable", 90), ("canary", 10)][..], &[("a", 50), ("b", 30), ("c", 20)], &[("a", 1), ("b", 0), ("c", 3)]]
        {
            let c = config(weights, "");
            let s = shares(&c, 100_000, |i| choose(&c, &sticky(&format!("user-{i}")), 0));
            assert_close(&s, &c);
        }
        // Keys that look alike (numbers, e-mail addresses) spread too.
        let c = config(&[("a", 50), ("b", 50)], "");
        assert_close(&shares(&c, 100_000, |i| choose(&c, &sticky(&i.to_string()), 0)), &c);
        assert_close(&shares(&c, 100_000, |i| choose(&c, &sticky(&format!("u{i}@example.com")), 0)), &c);
    }

    #[test]
    fn random_draws_follow_the_weights() {
        let c = config(&[("stable", 90), ("canary", 10)], "");
        let mut rng = SplitMix64::new(42);
        let s = shares(&c, 100_000, |_| choose(&c, &Inputs::default(), rng.next_u64()));
        assert_close(&s, &c);
        assert_eq!(choose(&c, &Inputs::default(), 0).reason, Reason::Random);
    }

    #[test]
    fn zero_weight_variants_are_never_drawn() {
        let c = config(&[("a", 0), ("b", 5), ("c", 0)], "");
        for r in [0, 1, u64::MAX / 3, u64::MAX] {
            assert_eq!(choose(&c, &Inputs::default(), r).variant, 1);
        }
    }

    #[test]
    fn sticky_keys_map_stably() {
        let c = config(&[("stable", 90), ("canary", 10)], "");
        for i in 0..1000 {
            let key = format!("user-{i}");
            let first = choose(&c, &sticky(&key), 1);
            assert_eq!(first.reason, Reason::Sticky);
            assert_eq!(choose(&c, &sticky(&key), u64::MAX).variant, first.variant);
        }
        // Pinned, so a change of hash cannot go unnoticed.
        assert_eq!(choose(&c, &sticky("alice"), 0).variant, 0);
    }

    #[test]
    fn ramping_up_only_moves_users_into_the_growing_variant() {
        let before = config(&[("stable", 90), ("canary", 10)], "");
        let after = config(&[("stable", 80), ("canary", 20)], "");
        for i in 0..10_000 {
            let key = sticky(&format!("user-{i}"));
            if choose(&before, &key, 0).variant == 1 {
                assert_eq!(choose(&after, &key, 0).variant, 1);
            }
        }
    }

    #[test]
    fn override_forces_a_known_variant() {
        let c = config(&[("stable", 100), ("dark", 0)], "");
        let ask = |name: &str| Inputs { override_value: Some(name.into()), ..sticky("alice") };
        assert_eq!(choose(&c, &ask("dark"), 0), Choice { variant: 1, reason: Reason::Override, set_cookie: false });
        assert_eq!(choose(&c, &ask("unknown"), 0).reason, Reason::Sticky);
        assert_eq!(choose(&c, &ask("Dark"), 0).reason, Reason::Sticky);
    }

    #[test]
    fn the_cookie_pins_the_variant() {
        let c = config(&[("stable", 50), ("canary", 50), ("old", 0)], r#", "set_cookie": {"name": "wv"}"#);
        let with_cookie = |v: &str| Inputs { cookie_variant: Some(v.into()), ..Inputs::default() };
        assert_eq!(
            choose(&c, &with_cookie("canary"), 0),
            Choice { variant: 1, reason: Reason::Cookie, set_cookie: false }
        );
        // Unknown or drained variants: a new choice, and a new cookie.
        for stale in ["gone", "old"] {
            let choice = choose(&c, &with_cookie(stale), 0);
            assert_eq!((choice.reason, choice.set_cookie), (Reason::Random, true));
        }
        // An override wins over the cookie but does not replace it.
        let both = Inputs { override_value: Some("stable".into()), ..with_cookie("canary") };
        assert_eq!(choose(&c, &both, 0), Choice { variant: 0, reason: Reason::Override, set_cookie: false });
        assert!(choose(&c, &Inputs::default(), 0).set_cookie);
        // Without `set_cookie` configured, no cookie is read or sent.
        let plain = config(&[("stable", 50), ("canary", 50)], "");
        assert!(!choose(&plain, &Inputs::default(), 0).set_cookie);
    }
}
