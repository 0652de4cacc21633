//! Identifiers by NAME: the key and URL-parameter names scrubbing drops (see the parent
//! module's docs for the rule), and the lookup every key of every event goes through.

/// Keys never kept in stored or queued properties and traits (normalized: lowercase, with
/// `_`, `-`, `.`, space, `[`, `]` removed). `search` is a page's query string, which may carry
/// anything the visitor typed.
pub const KEYS: &[&str] = &[
    "email",
    "mail",
    "phone",
    "phonenumber",
    "mobile",
    "tel",
    "telephone",
    "cell",
    "cellphone",
    "cellular",
    "fax",
    "firstname",
    "lastname",
    "fullname",
    "middlename",
    "surname",
    "givenname",
    "familyname",
    "maidenname",
    "birthday",
    "birthdate",
    "dob",
    "dateofbirth",
    "gender",
    "address",
    "street",
    "city",
    "state",
    "zip",
    "zipcode",
    "postalcode",
    "postcode",
    "country",
    "ip",
    "ipv4",
    "ipv6",
    "useragent",
    "fbp",
    "fbc",
    "gclid",
    "ttclid",
    "ttp",
    "clientid",
    "gaclientid",
    "userid",
    "anonymousid",
    "ssn",
    "password",
    "passwd",
    "search",
];

/// Endings that make a key identifying (`billing_address`, `ip_address`, `work_email`).
pub const KEY_SUFFIXES: &[&str] = &[
    "email",
    "phone",
    "phonenumber",
    "address",
    "street",
    "zipcode",
    "postalcode",
    "fullname",
    "firstname",
    "lastname",
];

/// Beginnings that make a key identifying (`address_line_1`, `email2`, `phone_home`).
pub const KEY_PREFIXES: &[&str] = &["email", "phone", "address", "street"];

/// Query (and fragment) parameters never kept in a URL that leaves (normalized like keys).
pub const URL_PARAMS: &[&str] = &[
    "email",
    "mail",
    "phone",
    "tel",
    "telephone",
    "mobile",
    "cell",
    "name",
    "firstname",
    "lastname",
    "fullname",
    "fname",
    "lname",
    "surname",
    "address",
    "street",
    "zip",
    "zipcode",
    "postalcode",
    "postcode",
    "dob",
    "birthday",
    "token",
    "password",
    "passwd",
    "pwd",
    "ssn",
    "user",
    "username",
    "login",
];

/// Endings that make a URL parameter identifying (`user_email`, `access_token`).
pub const URL_PARAM_SUFFIXES: &[&str] = &[
    "email",
    "phone",
    "address",
    "token",
    "password",
    "firstname",
    "lastname",
    "fullname",
];

/// Room for a normalized key's head and tail: every listed name fits.
const ROOM: usize = 32;
const _: () = {
    let lists: [&[&str]; 5] = [
        KEYS,
        KEY_SUFFIXES,
        KEY_PREFIXES,
        URL_PARAMS,
        URL_PARAM_SUFFIXES,
    ];
    let mut l = 0;
    while l < lists.len() {
        let mut i = 0;
        while i < lists[l].len() {
            assert!(lists[l][i].len() <= ROOM);
            i += 1;
        }
        l += 1;
    }
};

fn is_key_separator(b: u8) -> bool {
    matches!(b, b'_' | b'-' | b'.' | b' ' | b'[' | b']')
}

/// A key normalized on the stack: its first and last [`ROOM`] normalized bytes, and whether
/// it is longer than that. This runs for every key of every event.
struct Normalized {
    head: [u8; ROOM],
    head_len: usize,
    tail: [u8; ROOM],
    tail_len: usize,
    long: bool,
}

impl Normalized {
    fn new(key: &str) -> Self {
        let mut n = Self {
            head: [0; ROOM],
            head_len: 0,
            tail: [0; ROOM],
            tail_len: 0,
            long: false,
        };
        let bytes = key.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            i += 1;
            if is_key_separator(b) {
                continue;
            }
            if n.head_len == ROOM {
                n.long = true;
                break;
            }
            n.head[n.head_len] = b.to_ascii_lowercase();
            n.head_len += 1;
        }
        if n.long {
            // The tail, filled from the end.
            for b in bytes.iter().rev().filter(|b| !is_key_separator(**b)) {
                if n.tail_len == ROOM {
                    break;
                }
                n.tail[ROOM - 1 - n.tail_len] = b.to_ascii_lowercase();
                n.tail_len += 1;
            }
        }
        n
    }

    fn whole(&self) -> Option<&[u8]> {
        (!self.long).then(|| &self.head[..self.head_len])
    }

    fn tail(&self) -> &[u8] {
        if self.long {
            &self.tail[ROOM - self.tail_len..]
        } else {
            &self.head[..self.head_len]
        }
    }

    fn head(&self) -> &[u8] {
        &self.head[..self.head_len]
    }
}

/// A list of names split by the low five bits of their first and of their last byte, so that
/// a key is compared only with the few names whose first (or last) byte is like its own.
struct Lookup {
    by_first: [Vec<&'static [u8]>; 32],
    by_last: [Vec<&'static [u8]>; 32],
}

impl Lookup {
    fn new(list: &[&'static str]) -> Self {
        let mut lookup = Self {
            by_first: Default::default(),
            by_last: Default::default(),
        };
        for name in list {
            let name = name.as_bytes();
            if let (Some(first), Some(last)) =
                (Self::bucket(name.first()), Self::bucket(name.last()))
            {
                lookup.by_first[first].push(name);
                lookup.by_last[last].push(name);
            }
        }
        lookup
    }

    fn bucket(b: Option<&u8>) -> Option<usize> {
        b.map(|b| usize::from(b & 31))
    }

    fn is(&self, k: &[u8]) -> bool {
        Self::bucket(k.first()).is_some_and(|i| self.by_first[i].contains(&k))
    }

    fn starts(&self, k: &[u8]) -> bool {
        Self::bucket(k.first()).is_some_and(|i| self.by_first[i].iter().any(|s| k.starts_with(s)))
    }

    fn ends(&self, k: &[u8]) -> bool {
        Self::bucket(k.last()).is_some_and(|i| self.by_last[i].iter().any(|s| k.ends_with(s)))
    }
}

struct Lookups {
    keys: Lookup,
    key_suffixes: Lookup,
    key_prefixes: Lookup,
    trait_names: Lookup,
    url_params: Lookup,
    url_param_suffixes: Lookup,
}

static LOOKUPS: std::sync::LazyLock<Lookups> = std::sync::LazyLock::new(|| Lookups {
    keys: Lookup::new(KEYS),
    key_suffixes: Lookup::new(KEY_SUFFIXES),
    key_prefixes: Lookup::new(KEY_PREFIXES),
    trait_names: Lookup::new(&["name", "username"]),
    url_params: Lookup::new(URL_PARAMS),
    url_param_suffixes: Lookup::new(URL_PARAM_SUFFIXES),
});

/// Whether a property or trait key names an identifier (see the module docs). `drop_name`
/// (traits) also drops `name` and `username`.
pub fn identifying_key(key: &str, drop_name: bool) -> bool {
    let n = Normalized::new(key);
    let l = &*LOOKUPS;
    n.whole()
        .is_some_and(|k| l.keys.is(k) || (drop_name && l.trait_names.is(k)))
        || l.key_suffixes.ends(n.tail())
        || l.key_prefixes.starts(n.head())
}

/// Whether a URL parameter name names an identifier.
pub fn identifying_param(name: &str) -> bool {
    let n = Normalized::new(name);
    let l = &*LOOKUPS;
    n.whole().is_some_and(|k| l.url_params.is(k)) || l.url_param_suffixes.ends(n.tail())
}
