//! Validated newtypes for the values the configuration holds: parsed once at the edge (the
//! console), then the type proves the value is safe to hand to the kernel or write to disk.
//!
//! What lives here: [`PoolName`], [`DatasetName`], [`Size`], [`Compression`], [`Mode`], [`Uid`]
//! and [`Gid`], each with a `parse` that names the offending input in its error. What does not:
//! rules that involve more than one value (unique names, a gateway inside its subnet), which are
//! [`Config::validate`](super::Config::validate)'s job, and the on-disk encoding, which is
//! [`record`](super::record)'s.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// Why a pool name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PoolNameError {
    #[error("the pool name is empty: give a name such as \"tank\"")]
    Empty,
    #[error(
        "pool name {name:?} is {len} characters long: use at most {max}",
        max = PoolName::MAX_LEN
    )]
    TooLong { name: String, len: usize },
    #[error("pool name {name:?} must start with a lowercase letter (a-z)")]
    BadStart { name: String },
    #[error("pool name {name:?} contains {ch:?}: use only lowercase letters, digits, '-' and '_'")]
    BadChar { name: String, ch: char },
}

/// The name of the storage pool (the btrfs label and the mount point under `/mnt`).
///
/// 1 to 32 characters of lowercase letters, digits, `-` and `_`, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PoolName(String);

impl PoolName {
    /// The longest pool name, in characters (all of them ASCII).
    pub const MAX_LEN: usize = 32;

    /// Checks `name` and wraps it.
    pub fn parse(name: &str) -> Result<PoolName, PoolNameError> {
        let mut chars = name.chars();
        let Some(first) = chars.next() else {
            return Err(PoolNameError::Empty);
        };
        if let Some(ch) = name
            .chars()
            .find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'))
        {
            return Err(PoolNameError::BadChar {
                name: name.to_owned(),
                ch,
            });
        }
        if !first.is_ascii_lowercase() {
            return Err(PoolNameError::BadStart {
                name: name.to_owned(),
            });
        }
        if name.len() > Self::MAX_LEN {
            return Err(PoolNameError::TooLong {
                name: name.to_owned(),
                len: name.len(),
            });
        }
        Ok(PoolName(name.to_owned()))
    }

    /// The name as written on the pool.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PoolName {
    type Err = PoolNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PoolName::parse(s)
    }
}

impl fmt::Display for PoolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for PoolName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Why a dataset name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DatasetNameError {
    #[error("the dataset name is empty: give a name such as \"media\"")]
    Empty,
    #[error("dataset name {name:?} is a path component, not a name: choose another name")]
    DotName { name: String },
    #[error("dataset name {name:?} contains '/': datasets are not nested, use '-' or '_' instead")]
    Slash { name: String },
    #[error("dataset name {name:?} contains a space or other whitespace: use '-' or '_' instead")]
    Whitespace { name: String },
    #[error("dataset name {name:?} contains a control character: use only printable letters")]
    Control { name: String },
    #[error("dataset name {name:?} contains {ch:?}: use only letters, digits, '_', '-' and '.'")]
    BadChar { name: String, ch: char },
    #[error(
        "dataset name {name:?} starts with {first:?}: names starting with '.' or '-' are \
         reserved for the appliance, start with a letter, digit or '_'"
    )]
    BadStart { name: String, first: char },
    #[error(
        "dataset name {name:?} is {len} bytes long: use at most {max}",
        max = DatasetName::MAX_LEN
    )]
    TooLong { name: String, len: usize },
}

/// The name of a dataset (a btrfs subvolume directly under the pool's root).
///
/// 1 to 64 bytes of `A-Z a-z 0-9 _ - .`, not starting with `.` or `-` (hidden names such as
/// `.tank` belong to the appliance itself), and never `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DatasetName(String);

impl DatasetName {
    /// The longest dataset name, in bytes.
    pub const MAX_LEN: usize = 64;

    /// Checks `name` and wraps it.
    pub fn parse(name: &str) -> Result<DatasetName, DatasetNameError> {
        let owned = || name.to_owned();
        let Some(first) = name.chars().next() else {
            return Err(DatasetNameError::Empty);
        };
        if name == "." || name == ".." {
            return Err(DatasetNameError::DotName { name: owned() });
        }
        if name.contains('/') {
            return Err(DatasetNameError::Slash { name: owned() });
        }
        if name.chars().any(char::is_whitespace) {
            return Err(DatasetNameError::Whitespace { name: owned() });
        }
        if name.chars().any(char::is_control) {
            return Err(DatasetNameError::Control { name: owned() });
        }
        if let Some(ch) = name
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        {
            return Err(DatasetNameError::BadChar { name: owned(), ch });
        }
        if first == '.' || first == '-' {
            return Err(DatasetNameError::BadStart {
                name: owned(),
                first,
            });
        }
        if name.len() > Self::MAX_LEN {
            return Err(DatasetNameError::TooLong {
                name: owned(),
                len: name.len(),
            });
        }
        Ok(DatasetName(owned()))
    }

    /// The name as the subvolume is called.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for DatasetName {
    type Err = DatasetNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DatasetName::parse(s)
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for DatasetName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Why a size was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SizeError {
    #[error("the size is empty: give a size such as 10G, 500M or 1.5T")]
    Empty,
    #[error("size {input:?} is negative: give a positive size such as 10G")]
    Negative { input: String },
    #[error(
        "{input:?} is not a size: give a number with an optional unit K, M, G, T, P or E \
         (for example 10G, 500M, 1.5T or 123 for bytes)"
    )]
    Garbage { input: String },
    #[error("size {input:?} has unknown unit {unit:?}: use K, M, G, T, P or E (binary units)")]
    UnknownUnit { input: String, unit: String },
    #[error("size {input:?} is a fraction of a byte: give whole bytes or use a unit such as K")]
    FractionalBytes { input: String },
    #[error("size {input:?} is too large: the largest size is 16 EiB minus one byte")]
    Overflow { input: String },
    #[error("quota {input:?} is zero: give a positive size, or \"none\" to remove the quota")]
    ZeroQuota { input: String },
}

/// A number of bytes, as used for quotas.
///
/// Parsing accepts a decimal number with an optional unit: `123` (bytes), `1024K`, `500M`,
/// `10G`, `1.5T`, `2P`, `1E`. Units are case-insensitive and may be followed by `B` or `iB`
/// (`10GiB`, `10GB`, `10g`). **All units are binary**: `10GB` means 10 GiB (10 × 2³⁰ bytes),
/// as in btrfs and most storage tools; nobody sizing a quota wants a 7 % surprise. A fraction
/// (`1.5T`) is rounded down to whole bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Size(u64);

/// The binary units, smallest first, with the suffix [`Size`]'s `Display` uses.
const UNITS: [(char, &str); 6] = [
    ('k', "KiB"),
    ('m', "MiB"),
    ('g', "GiB"),
    ('t', "TiB"),
    ('p', "PiB"),
    ('e', "EiB"),
];

impl Size {
    /// A size of `bytes` bytes.
    pub const fn from_bytes(bytes: u64) -> Size {
        Size(bytes)
    }

    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// Parses a size such as `10G`, `500M`, `1.5T` or `123`; zero is accepted.
    pub fn parse(input: &str) -> Result<Size, SizeError> {
        let text = input.trim();
        if text.is_empty() {
            return Err(SizeError::Empty);
        }
        let garbage = || SizeError::Garbage {
            input: input.to_owned(),
        };
        if text.starts_with('-') {
            return Err(SizeError::Negative {
                input: input.to_owned(),
            });
        }
        let number_end = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(number_end);
        let (whole, fraction) = match number.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (number, None),
        };
        if whole.is_empty()
            || fraction.is_some_and(|f| f.is_empty() || f.contains('.'))
            || !whole.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(garbage());
        }
        let multiplier = Self::unit_multiplier(unit.trim_start()).ok_or_else(|| {
            if unit
                .trim_start()
                .starts_with(|c: char| c.is_ascii_alphabetic())
            {
                SizeError::UnknownUnit {
                    input: input.to_owned(),
                    unit: unit.trim_start().to_owned(),
                }
            } else {
                garbage()
            }
        })?;
        let overflow = || SizeError::Overflow {
            input: input.to_owned(),
        };
        // u128 holds any u64 times 2^60 and the fraction arithmetic below without overflow,
        // once the digit counts are bounded.
        let mut value: u128 = 0;
        for digit in whole.bytes() {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u128::from(digit - b'0')))
                .filter(|&v| v <= u128::from(u64::MAX))
                .ok_or_else(overflow)?;
        }
        let mut total = value.checked_mul(multiplier).ok_or_else(overflow)?;
        if let Some(fraction) = fraction {
            // Digits beyond the 18th cannot change the whole-byte result by more than rounding.
            let digits = &fraction[..fraction.len().min(18)];
            let mut numerator: u128 = 0;
            let mut denominator: u128 = 1;
            for digit in digits.bytes() {
                numerator = numerator * 10 + u128::from(digit - b'0');
                denominator *= 10;
            }
            let part = numerator * multiplier;
            if multiplier == 1 && fraction.bytes().any(|b| b != b'0') {
                return Err(SizeError::FractionalBytes {
                    input: input.to_owned(),
                });
            }
            total = total.checked_add(part / denominator).ok_or_else(overflow)?;
        }
        u64::try_from(total).map(Size).map_err(|_| overflow())
    }

    /// Parses a quota: like [`Size::parse`], but `none` or `off` mean "no quota" (`None`) and
    /// zero is refused (a zero quota would make the dataset unwritable; say `none` instead).
    pub fn parse_quota(input: &str) -> Result<Option<Size>, SizeError> {
        let text = input.trim();
        if text.eq_ignore_ascii_case("none") || text.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let size = Size::parse(input)?;
        if size.0 == 0 {
            return Err(SizeError::ZeroQuota {
                input: input.to_owned(),
            });
        }
        Ok(Some(size))
    }

    /// The multiplier for a unit suffix (`""`, `B`, `K`, `KB`, `KiB`, ...), case-insensitive.
    fn unit_multiplier(unit: &str) -> Option<u128> {
        let lower = unit.to_ascii_lowercase();
        if lower.is_empty() || lower == "b" {
            return Some(1);
        }
        let mut chars = lower.chars();
        let letter = chars.next()?;
        let rest = chars.as_str();
        if !matches!(rest, "" | "b" | "ib") {
            return None;
        }
        let index = UNITS.iter().position(|&(c, _)| c == letter)?;
        Some(1u128 << (10 * (index + 1)))
    }
}

impl FromStr for Size {
    type Err = SizeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Size::parse(s)
    }
}

/// A human size with one decimal in the largest binary unit that fits: `10.0 GiB`, `1.5 TiB`,
/// `123 B`. Lossy; the exact value is [`Size::bytes`].
impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = u128::from(self.0);
        if bytes < 1024 {
            return write!(f, "{bytes} B");
        }
        let mut chosen = 0;
        for (index, _) in UNITS.iter().enumerate() {
            if bytes >= 1u128 << (10 * (index + 1)) {
                chosen = index;
            }
        }
        let unit = 1u128 << (10 * (chosen + 1));
        let mut tenths = (bytes * 10 + unit / 2) / unit;
        // 1023.96 GiB rounds to 1024.0 GiB: show it as 1.0 TiB instead.
        if tenths >= 10240 && chosen + 1 < UNITS.len() {
            chosen += 1;
            tenths = (bytes * 10 + unit * 512) / (unit * 1024);
        }
        let suffix = UNITS[chosen].1;
        write!(f, "{}.{} {suffix}", tenths / 10, tenths % 10)
    }
}

/// Why a compression name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{input:?} is not a compression: use none, zstd, lzo or zlib")]
pub struct CompressionError {
    pub input: String,
}

/// The btrfs compression of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// No compression (`none` or `off`).
    None,
    /// zstd, the default: a good ratio at a low cost.
    #[default]
    Zstd,
    /// lzo: fastest, weakest.
    Lzo,
    /// zlib: strongest, slowest.
    Zlib,
}

impl Compression {
    /// Every compression, for help texts.
    #[cfg(test)]
    pub const ALL: [Compression; 4] = [
        Compression::None,
        Compression::Zstd,
        Compression::Lzo,
        Compression::Zlib,
    ];

    /// Parses `none`/`off`, `zstd`, `lzo` or `zlib`, case-insensitive.
    pub fn parse(input: &str) -> Result<Compression, CompressionError> {
        let text = input.trim().to_ascii_lowercase();
        match text.as_str() {
            "none" | "off" => Ok(Compression::None),
            "zstd" => Ok(Compression::Zstd),
            "lzo" => Ok(Compression::Lzo),
            "zlib" => Ok(Compression::Zlib),
            _ => Err(CompressionError {
                input: input.to_owned(),
            }),
        }
    }

    /// The name as btrfs's `compression` property spells it (`none` for no compression).
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Zstd => "zstd",
            Compression::Lzo => "lzo",
            Compression::Zlib => "zlib",
        }
    }
}

impl FromStr for Compression {
    type Err = CompressionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Compression::parse(s)
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a file mode was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ModeError {
    #[error("{input:?} is not an octal file mode: give octal digits such as 0755 or 750")]
    Garbage { input: String },
    #[error("file mode {input:?} is larger than 07777: give permission bits such as 0755")]
    TooLarge { input: String },
}

/// The permission bits of a dataset's root directory, `0..=0o7777` (including setuid, setgid
/// and sticky).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mode(u32);

impl Mode {
    /// The largest mode: every permission, setuid, setgid and sticky bit.
    pub const MAX: u32 = 0o7777;

    /// `rwxr-xr-x`, the mode of a new dataset.
    pub const DEFAULT: Mode = Mode(0o755);

    /// Checks a numeric mode.
    #[cfg(test)]
    pub fn new(bits: u32) -> Result<Mode, ModeError> {
        if bits > Self::MAX {
            return Err(ModeError::TooLarge {
                input: format!("{bits:o}"),
            });
        }
        Ok(Mode(bits))
    }

    /// Parses an octal mode: `0755`, `755`, `0o755` or `1777`.
    pub fn parse(input: &str) -> Result<Mode, ModeError> {
        let text = input.trim();
        let digits = text.strip_prefix("0o").unwrap_or(text);
        if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return Err(ModeError::Garbage {
                input: input.to_owned(),
            });
        }
        let bits = u32::from_str_radix(digits, 8)
            .ok()
            .filter(|&bits| bits <= Self::MAX)
            .ok_or_else(|| ModeError::TooLarge {
                input: input.to_owned(),
            })?;
        Ok(Mode(bits))
    }

    /// The mode bits.
    pub const fn bits(self) -> u32 {
        self.0
    }
}

impl Default for Mode {
    fn default() -> Mode {
        Mode::DEFAULT
    }
}

impl FromStr for Mode {
    type Err = ModeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::parse(s)
    }
}

/// Four octal digits: `0755`.
impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

/// Why a user or group id was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    #[error("{input:?} is not a numeric {what} id: give a number such as 1000")]
    Garbage { what: &'static str, input: String },
    #[error(
        "{what} id {input:?} is out of range: give a number from 0 to {max}",
        max = MAX_ID
    )]
    OutOfRange { what: &'static str, input: String },
}

/// The largest valid user or group id: `u32::MAX` is `(uid_t)-1`, "no change" to `chown`.
pub const MAX_ID: u32 = u32::MAX - 1;

fn parse_id(input: &str, what: &'static str) -> Result<u32, IdError> {
    let text = input.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IdError::Garbage {
            what,
            input: input.to_owned(),
        });
    }
    text.parse::<u32>()
        .ok()
        .filter(|&id| id <= MAX_ID)
        .ok_or_else(|| IdError::OutOfRange {
            what,
            input: input.to_owned(),
        })
}

macro_rules! numeric_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(u32);

        impl $name {
            /// Parses a decimal id.
            pub fn parse(input: &str) -> Result<$name, IdError> {
                parse_id(input, $what).map($name)
            }

            /// The numeric id.
            pub const fn get(self) -> u32 {
                self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

numeric_id!(
    /// A numeric user id (`0..=4294967294`), the owner of a dataset's root directory.
    Uid,
    "user"
);
numeric_id!(
    /// A numeric group id (`0..=4294967294`), the group of a dataset's root directory.
    Gid,
    "group"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_names() {
        for good in ["tank", "t", "pool-1", "a_b", &"a".repeat(32)] {
            assert_eq!(PoolName::parse(good).unwrap().as_str(), good);
        }
        assert_eq!(PoolName::parse(""), Err(PoolNameError::Empty));
        let cases = [
            ("Tank", "'T'"),
            ("1tank", "must start"),
            ("-tank", "must start"),
            ("ta nk", "' '"),
            ("ta/nk", "'/'"),
            ("tänk", "'ä'"),
        ];
        for (bad, says) in cases {
            let message = PoolName::parse(bad).unwrap_err().to_string();
            assert!(message.contains(&format!("{bad:?}")), "{message}");
            assert!(message.contains(says), "{message}");
        }
        let long = "a".repeat(33);
        let message = PoolName::parse(&long).unwrap_err().to_string();
        assert!(
            message.contains(&long) && message.contains("33"),
            "{message}"
        );
    }

    #[test]
    fn dataset_names() {
        for good in [
            "media",
            "Media.2024",
            "a",
            "_x",
            "a-b_c.d",
            "x..y",
            &"a".repeat(64),
        ] {
            assert_eq!(DatasetName::parse(good).unwrap().as_str(), good);
        }
        assert!(DatasetName::parse("")
            .unwrap_err()
            .to_string()
            .contains("empty"));
        let cases: [(&str, &str); 12] = [
            (".", "path component"),
            ("..", "path component"),
            ("a/b", "'/'"),
            ("/", "'/'"),
            ("my media", "space"),
            ("tab\there", "whitespace"),
            ("bell\u{7}", "control"),
            ("a*b", "'*'"),
            ("café", "'é'"),
            (".tank", "reserved"),
            ("-x", "reserved"),
            ("..hidden", "reserved"),
        ];
        for (bad, says) in cases {
            let message = DatasetName::parse(bad).unwrap_err().to_string();
            assert!(message.contains(&format!("{bad:?}")), "{bad:?}: {message}");
            assert!(message.contains(says), "{bad:?}: {message}");
        }
        let long = "a".repeat(65);
        let message = DatasetName::parse(&long).unwrap_err().to_string();
        assert!(message.contains(&long), "{message}");
        assert!(
            message.contains("65 bytes") && message.contains("at most 64"),
            "{message}"
        );
    }

    #[test]
    fn sizes_parse() {
        const K: u64 = 1 << 10;
        const G: u64 = 1 << 30;
        const T: u64 = 1 << 40;
        let cases = [
            ("123", 123),
            ("0", 0),
            ("1024K", 1024 * K),
            ("500M", 500 << 20),
            ("10G", 10 * G),
            ("10g", 10 * G),
            ("10GiB", 10 * G),
            ("10GB", 10 * G),
            ("10 G", 10 * G),
            (" 10G ", 10 * G),
            ("1.5T", T + T / 2),
            ("0.5K", 512),
            ("1.0001K", 1024),
            ("2.0", 2),
            ("123B", 123),
            ("15E", 15 << 60),
            ("18446744073709551615", u64::MAX),
        ];
        for (input, bytes) in cases {
            assert_eq!(Size::parse(input), Ok(Size::from_bytes(bytes)), "{input}");
        }
    }

    #[test]
    fn sizes_refused() {
        let cases = [
            ("-5G", "negative"),
            ("-0", "negative"),
            ("ten", "not a size"),
            ("G", "not a size"),
            (".5G", "not a size"),
            ("1.G", "not a size"),
            ("1.2.3G", "not a size"),
            ("+5G", "not a size"),
            ("10#", "not a size"),
            ("10X", "unknown unit \"X\""),
            ("10GiBs", "unknown unit"),
            ("1.5", "fraction of a byte"),
            ("16E", "too large"),
            ("18446744073709551616", "too large"),
            ("99999999999999999999999999999999999999999G", "too large"),
            ("17179869184G", "too large"),
        ];
        for (input, says) in cases {
            let message = Size::parse(input).unwrap_err().to_string();
            assert!(
                message.contains(&format!("{input:?}")),
                "{input}: {message}"
            );
            assert!(message.contains(says), "{input}: {message}");
        }
        assert_eq!(Size::parse("  "), Err(SizeError::Empty));
    }

    #[test]
    fn quotas() {
        assert_eq!(Size::parse_quota("none"), Ok(None));
        assert_eq!(Size::parse_quota("OFF"), Ok(None));
        assert_eq!(
            Size::parse_quota("10G"),
            Ok(Some(Size::from_bytes(10 << 30)))
        );
        for zero in ["0", "0G", "0.0001"] {
            let message = Size::parse_quota(zero).unwrap_err().to_string();
            assert!(
                message.contains("zero") || message.contains("fraction"),
                "{message}"
            );
            assert!(message.contains(zero), "{message}");
        }
        assert!(Size::parse_quota("0K")
            .unwrap_err()
            .to_string()
            .contains("\"none\""));
        assert!(Size::parse_quota("nope").is_err());
    }

    #[test]
    fn sizes_display() {
        let cases = [
            (0, "0 B"),
            (123, "123 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1536, "1.5 KiB"),
            (10 << 30, "10.0 GiB"),
            ((1 << 40) + (1 << 39), "1.5 TiB"),
            ((1 << 40) - 1, "1.0 TiB"),
            (u64::MAX, "16.0 EiB"),
        ];
        for (bytes, text) in cases {
            assert_eq!(Size::from_bytes(bytes).to_string(), text, "{bytes}");
        }
    }

    #[test]
    fn compressions() {
        for c in Compression::ALL {
            assert_eq!(Compression::parse(&c.to_string()), Ok(c));
        }
        assert_eq!(Compression::parse("ZSTD"), Ok(Compression::Zstd));
        assert_eq!(Compression::parse("off"), Ok(Compression::None));
        let message = Compression::parse("lz4").unwrap_err().to_string();
        assert!(
            message.contains("\"lz4\"") && message.contains("zstd"),
            "{message}"
        );
    }

    #[test]
    fn modes() {
        for (input, bits) in [
            ("0755", 0o755),
            ("755", 0o755),
            ("0o1777", 0o1777),
            ("0", 0),
        ] {
            assert_eq!(Mode::parse(input).map(Mode::bits), Ok(bits), "{input}");
        }
        assert_eq!(Mode::parse("7777").map(Mode::bits), Ok(0o7777));
        assert_eq!(Mode::DEFAULT.to_string(), "0755");
        assert_eq!(Mode::parse("1777").unwrap().to_string(), "1777");
        for (input, says) in [
            ("0789", "not an octal"),
            ("rwx", "not an octal"),
            ("", "not an octal"),
            ("-755", "not an octal"),
            ("17777", "larger than 07777"),
            ("777777777777777777", "larger than 07777"),
        ] {
            let message = Mode::parse(input).unwrap_err().to_string();
            assert!(message.contains(&format!("{input:?}")), "{message}");
            assert!(message.contains(says), "{message}");
        }
        assert!(Mode::new(0o10000).is_err());
    }

    #[test]
    fn ids() {
        assert_eq!(Uid::parse("1000").map(Uid::get), Ok(1000));
        assert_eq!(Gid::parse("4294967294").map(Gid::get), Ok(4_294_967_294));
        for (input, says) in [
            ("4294967295", "out of range"),
            ("99999999999", "out of range"),
            ("-1", "not a numeric user id"),
            ("root", "not a numeric user id"),
            ("", "not a numeric user id"),
        ] {
            let message = Uid::parse(input).unwrap_err().to_string();
            assert!(message.contains(&format!("{input:?}")), "{message}");
            assert!(message.contains(says), "{message}");
        }
        assert!(Gid::parse("x")
            .unwrap_err()
            .to_string()
            .contains("group id"));
        assert!(Uid::parse(&u32::MAX.to_string()).is_err());
        assert_eq!(Uid::parse("0").map(Uid::get), Ok(0));
    }
}
