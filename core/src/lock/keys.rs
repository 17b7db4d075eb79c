// SPDX-License-Identifier: MIT OR Apache-2.0
//! The key scheme of PROTOCOL.md: the lock key and the auxiliary keys that must share its
//! Redis Cluster slot.

use crate::binding::validate;
use crate::error::{Error, Result};

/// Suffixes of the auxiliary keys. A lock key may not itself end in one of them.
pub(crate) const SUFFIX_HOLDER: &str = "~h";
pub(crate) const SUFFIX_QUEUE: &str = "~q";
pub(crate) const SUFFIX_WAITERS: &str = "~w";
pub(crate) const SUFFIX_CHANNEL: &str = "~c";
const SUFFIXES: [&str; 4] = [SUFFIX_HOLDER, SUFFIX_QUEUE, SUFFIX_WAITERS, SUFFIX_CHANNEL];

/// The index of locks that have waiters (after the key prefix).
pub(crate) const WAITING_INDEX: &str = "txcoord:waiting";

/// The byte range of the hash tag Redis Cluster uses for `key`, if it has one: the text between
/// the first `{` and the first `}` after it, when that text is not empty.
pub fn hash_tag(key: &str) -> Option<&str> {
    let open = key.find('{')?;
    let rest = &key[open + 1..];
    let close = rest.find('}')?;
    if close == 0 {
        None
    } else {
        Some(&rest[..close])
    }
}

/// The Redis Cluster slot of a key (CRC16/XMODEM of its hash tag or of the whole key, mod 16384).
pub fn slot(key: &str) -> u16 {
    let hashed = hash_tag(key).unwrap_or(key);
    crc16(hashed.as_bytes()) % 16384
}

fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= (byte as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Every key and the channel of one lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockKeys {
    /// `K`: the lock key itself (a string holding the holder's value).
    pub lock: String,
    /// `H`: the holder hash (fence counter, holder value, owner, hold count, priority, since).
    pub holder: String,
    /// `Q`: the waiter queue (sorted set by arrival).
    pub queue: String,
    /// `W`: the waiter entries (hash waiter id → entry).
    pub waiters: String,
    /// The release channel.
    pub channel: String,
    /// The cross-resource index of locks with waiters (its own slot).
    pub index: String,
}

impl LockKeys {
    /// Keys for a full lock key that already starts with `prefix`. `arg` names the argument
    /// for errors.
    pub fn for_key(prefix: &str, full_key: &str, arg: &'static str) -> Result<Self> {
        let base = if hash_tag(full_key).is_some() {
            full_key.to_string()
        } else if full_key.contains('}') {
            return Err(Error::invalid_argument(
                arg,
                format!(
                    "the lock key {full_key:?} contains '}}' without forming a hash tag, so no \
                     auxiliary key could share its Redis Cluster slot; use a '{{tag}}' or drop the '}}'"
                ),
            ));
        } else {
            format!("{{{full_key}}}")
        };
        for suffix in SUFFIXES {
            if full_key.ends_with(&format!(":{suffix}")) {
                return Err(Error::invalid_argument(
                    arg,
                    format!("the lock key {full_key:?} ends in ':{suffix}', which txcoord reserves for its own keys"),
                ));
            }
        }
        let aux = |suffix: &str| format!("{base}:{suffix}");
        Ok(LockKeys {
            lock: full_key.to_string(),
            holder: aux(SUFFIX_HOLDER),
            queue: aux(SUFFIX_QUEUE),
            waiters: aux(SUFFIX_WAITERS),
            channel: aux(SUFFIX_CHANNEL),
            index: format!("{prefix}{WAITING_INDEX}"),
        })
    }

    /// Keys for `prefix + lock_key`, validating the lock key first.
    pub fn new(prefix: &str, lock_key: &str, arg: &'static str) -> Result<Self> {
        validate::resource_str(arg, lock_key)?;
        Self::for_key(prefix, &format!("{prefix}{lock_key}"), arg)
    }

    /// Keys for the LockManager's `lock:<resource>` under `prefix`.
    pub fn for_resource(prefix: &str, resource: &str) -> Result<Self> {
        validate::resource_str("resource", resource)?;
        Self::for_key(prefix, &format!("{prefix}lock:{resource}"), "resource")
    }

    pub(crate) fn all(&self) -> [&str; 4] {
        [&self.lock, &self.holder, &self.queue, &self.waiters]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_the_cluster_spec() {
        // From the Redis Cluster specification: CRC16 of "123456789" is 0x31C3.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
    }

    #[test]
    fn untagged_keys_wrap_in_a_tag() {
        let k = LockKeys::for_resource("", "order:42").unwrap();
        assert_eq!(k.lock, "lock:order:42");
        assert_eq!(k.holder, "{lock:order:42}:~h");
        assert_eq!(k.queue, "{lock:order:42}:~q");
        assert_eq!(k.waiters, "{lock:order:42}:~w");
        assert_eq!(k.channel, "{lock:order:42}:~c");
        for key in [&k.holder, &k.queue, &k.waiters, &k.channel] {
            assert_eq!(slot(key), slot(&k.lock), "{key}");
        }
    }

    #[test]
    fn tagged_keys_keep_their_tag() {
        let k = LockKeys::for_resource("app:", "{user1}:cart").unwrap();
        assert_eq!(k.lock, "app:lock:{user1}:cart");
        assert_eq!(k.holder, "app:lock:{user1}:cart:~h");
        for key in [&k.holder, &k.queue, &k.waiters, &k.channel] {
            assert_eq!(slot(key), slot("user1"), "{key}");
        }
    }

    #[test]
    fn prefix_is_part_of_the_key_for_the_tag_rule() {
        let k = LockKeys::for_resource("{svc}:", "a").unwrap();
        assert_eq!(k.lock, "{svc}:lock:a");
        assert_eq!(k.holder, "{svc}:lock:a:~h");
        assert_eq!(slot(&k.holder), slot(&k.lock));
    }

    #[test]
    fn odd_braces() {
        // '{' without a closing brace: not a tag, wrapped whole.
        let k = LockKeys::for_resource("", "a{b").unwrap();
        assert_eq!(k.holder, "{lock:a{b}:~h");
        assert_eq!(slot(&k.holder), slot(&k.lock));
        // an empty tag '{}' is not a tag either, but the '}' makes wrapping impossible
        assert!(LockKeys::for_resource("", "{}x").is_err());
        // a later valid tag after an empty one does not count in Redis: refused
        assert!(LockKeys::for_resource("", "a}b").is_err());
        // a valid tag with more braces after it is fine
        let k = LockKeys::for_resource("", "{a}}{b}").unwrap();
        assert_eq!(slot(&k.queue), slot(&k.lock));
    }

    #[test]
    fn reserved_suffixes_are_refused() {
        let e = LockKeys::for_resource("", "{x}:~h").unwrap_err();
        assert_eq!(e.argument(), Some("resource"));
        assert!(LockKeys::for_resource("", "x:~hh").is_ok());
    }
}
