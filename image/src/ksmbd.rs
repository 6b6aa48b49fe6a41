//! The ksmbd module's message layouts, checked against the ones the init is written for.
//!
//! The init's SMB daemon (`appliance/src/smb/ipc.rs`) encodes and decodes ksmbd's netlink
//! messages with fixed C layouts, the table in `appliance/src/smb/layout.rs` (included here
//! as [`layout`]). The kernel package floats within Debian's 6.12 series, so the build checks,
//! for the kernel it packs, that `ksmbd.ko` still has exactly those layouts: every structure's
//! size and its members' names, offsets and sizes, and every value of the enums the daemon
//! relies on (`ksmbd_event`, `KSMBD_TREE_CONN_STATUS`).
//!
//! The evidence is the module's BTF (its `.BTF` section, which Debian's kernels carry with
//! `CONFIG_DEBUG_INFO_BTF_MODULES`). A module's BTF is split BTF: its type ids and strings
//! continue those of the kernel's own BTF, so the kernel's `.BTF` is read too, from the ELF
//! inside `vmlinuz` (the bzImage payload, decompressed: zstd, xz or gzip). Both are parsed
//! with the `btf-rs` crate. A module without BTF is a build failure, not a weaker check:
//! nothing else in the package says what the structures look like.
//!
//! What does not live here: the layouts themselves (`layout.rs`, next to `ipc.rs`).

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use btf_rs::{Btf, Type};

#[path = "../../appliance/src/smb/layout.rs"]
pub mod layout;

use layout::{Enum, Struct};

/// The module the daemon talks to.
pub const MODULE: &str = "ksmbd";

/// Why the ksmbd layouts could not be checked, or what differs.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error(
        "cannot read `{path}`: {detail}; fetch the kernel again (delete its folder in the cache)"
    )]
    Read { path: PathBuf, detail: String },
    #[error(
        "`{path}` has no .BTF section, so the ksmbd message layouts the init's SMB daemon is \
         written for cannot be checked against it; build with a kernel that has \
         CONFIG_DEBUG_INFO_BTF_MODULES=y (Debian's do), or check appliance/src/smb/layout.rs \
         against the kernel's fs/smb/server/ksmbd_netlink.h by hand and pin that kernel"
    )]
    NoBtf { path: PathBuf },
    #[error("cannot read the BTF of `{path}`: {detail}; fetch the kernel again (delete its folder in the cache)")]
    Btf { path: PathBuf, detail: String },
    #[error(
        "the ksmbd module of kernel {release} does not have the message layouts the init's SMB \
         daemon is written for ({module}):\n{}\nThe daemon would misread the kernel's requests \
         and send replies it rejects. Update appliance/src/smb/layout.rs to the kernel's \
         fs/smb/server/ksmbd_netlink.h and appliance/src/smb/ipc.rs for the new layout, or \
         build with a kernel whose ksmbd matches.",
        .differences.iter().map(|d| format!("  - {d}")).collect::<Vec<_>>().join("\n")
    )]
    Mismatch {
        release: String,
        module: PathBuf,
        differences: Vec<String>,
    },
}

/// Checks the ksmbd module at `module` (a `.ko` or `.ko.xz`) of kernel `release`, whose
/// image is `vmlinuz`, against [`layout::STRUCTS`] and [`layout::ENUMS`].
pub fn check(vmlinuz: &Path, module: &Path, release: &str) -> Result<(), LayoutError> {
    check_against(vmlinuz, module, release, layout::STRUCTS, layout::ENUMS)
}

/// [`check`] with the tables given.
pub fn check_against(
    vmlinuz: &Path,
    module: &Path,
    release: &str,
    structs: &[Struct],
    enums: &[Enum],
) -> Result<(), LayoutError> {
    let btf = module_btf(vmlinuz, module)?;
    verdict(&btf, module, release, structs, enums)
}

/// [`compare`] as a result: the differences, if any, as a [`LayoutError::Mismatch`].
pub fn verdict(
    btf: &Btf,
    module: &Path,
    release: &str,
    structs: &[Struct],
    enums: &[Enum],
) -> Result<(), LayoutError> {
    let differences = compare(btf, structs, enums);
    if differences.is_empty() {
        Ok(())
    } else {
        Err(LayoutError::Mismatch {
            release: release.to_owned(),
            module: module.to_owned(),
            differences,
        })
    }
}

/// The module's BTF over the kernel's.
pub fn module_btf(vmlinuz: &Path, module: &Path) -> Result<Btf, LayoutError> {
    let read_err = |path: &Path, detail: String| LayoutError::Read {
        path: path.to_owned(),
        detail,
    };
    let ko =
        crate::modules::read_module_bytes(module).map_err(|e| read_err(module, e.to_string()))?;
    let module_section = elf_section(&ko, ".BTF")
        .map_err(|detail| read_err(module, detail))?
        .ok_or_else(|| LayoutError::NoBtf {
            path: module.to_owned(),
        })?;
    let image = std::fs::read(vmlinuz).map_err(|e| read_err(vmlinuz, e.to_string()))?;
    let vmlinux = bzimage_payload(&image).map_err(|detail| read_err(vmlinuz, detail))?;
    let base_section = elf_section(&vmlinux, ".BTF")
        .map_err(|detail| read_err(vmlinuz, detail))?
        .ok_or_else(|| LayoutError::NoBtf {
            path: vmlinuz.to_owned(),
        })?;
    let btf_err = |path: &Path, e: btf_rs::Error| LayoutError::Btf {
        path: path.to_owned(),
        detail: e.to_string(),
    };
    let base = Btf::from_bytes(base_section).map_err(|e| btf_err(vmlinuz, e))?;
    Btf::from_split_bytes(module_section, &base).map_err(|e| btf_err(module, e))
}

/// The bytes of section `name` of an ELF file, if it has one.
fn elf_section<'a>(elf: &'a [u8], name: &str) -> Result<Option<&'a [u8]>, String> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(elf).map_err(|e| format!("ELF: {e}"))?;
    match file.section_by_name(name) {
        Some(section) => section.data().map(Some).map_err(|e| format!("{name}: {e}")),
        None => Ok(None),
    }
}

/// The kernel ELF inside an x86 bzImage: the protected-mode payload (boot protocol 2.08 or
/// later: `payload_offset` and `payload_length` in the setup header), decompressed.
pub fn bzimage_payload(image: &[u8]) -> Result<Vec<u8>, String> {
    let le16 = |at: usize| {
        image
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let le32 = |at: usize| {
        image
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    if image.get(0x202..0x206) != Some(b"HdrS") {
        return Err("not a bzImage (no HdrS setup header)".into());
    }
    let version = le16(0x206).unwrap_or(0);
    if version < 0x208 {
        return Err(format!(
            "boot protocol {}.{:02} has no payload fields (2.08 or later needed)",
            version >> 8,
            version & 0xff
        ));
    }
    let setup_sects = match image.get(0x1f1) {
        Some(0) | None => 4,
        Some(&n) => usize::from(n),
    };
    let start = (setup_sects + 1) * 512 + le32(0x248).unwrap_or(0) as usize;
    let len = le32(0x24c).unwrap_or(0) as usize;
    let payload = image
        .get(start..start.saturating_add(len))
        .ok_or_else(|| format!("the payload ({len} bytes at {start}) lies past the end"))?;
    let mut out = Vec::new();
    let result = if payload.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::stream::read::Decoder::new(payload)
            .map(|d| d.single_frame())
            .and_then(|mut d| d.read_to_end(&mut out))
    } else if payload.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        liblzma::read::XzDecoder::new(payload).read_to_end(&mut out)
    } else if payload.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(payload).read_to_end(&mut out)
    } else {
        Err(io::Error::other(format!(
            "the payload starts with {:02x?}: not zstd, xz or gzip",
            &payload[..payload.len().min(6)]
        )))
    };
    result.map_err(|e| format!("decompressing the kernel: {e}"))?;
    Ok(out)
}

/// The size in bytes of a type, through typedefs, qualifiers and arrays.
fn type_size(btf: &Btf, ty: &Type) -> Option<usize> {
    match ty {
        Type::Int(i) => Some(i.size()),
        Type::Struct(s) | Type::Union(s) => Some(s.size()),
        Type::Enum(e) => Some(e.size()),
        Type::Enum64(e) => Some(e.size()),
        Type::Float(f) => Some(f.size()),
        Type::Ptr(_) => Some(8),
        Type::Array(a) => {
            let elem = btf.resolve_chained_type(a).ok()?;
            Some(a.len() * type_size(btf, &elem)?)
        }
        Type::Typedef(_)
        | Type::Volatile(_)
        | Type::Const(_)
        | Type::Restrict(_)
        | Type::TypeTag(_) => {
            let next = btf.resolve_chained_type(ty.as_btf_type()?).ok()?;
            type_size(btf, &next)
        }
        _ => None,
    }
}

/// A structure as the BTF has it.
struct BtfStruct {
    size: usize,
    /// Name, offset and size in bytes of each member that is not a bit field.
    members: BTreeMap<String, (usize, usize)>,
    /// The bit fields, described (the table has none).
    bitfields: Vec<String>,
}

/// The structure `name` as the BTF has it (a definition, not a forward declaration).
fn btf_struct(btf: &Btf, name: &str) -> Option<BtfStruct> {
    let types = btf.resolve_types_by_name(name).ok()?;
    let s = types.into_iter().find_map(|t| match t {
        Type::Struct(s) => Some(s),
        _ => None,
    })?;
    let mut out = BtfStruct {
        size: s.size(),
        members: BTreeMap::new(),
        bitfields: Vec::new(),
    };
    for m in &s.members {
        let member = btf.resolve_name(m).unwrap_or_default();
        if let Some(bits) = m.bitfield_size() {
            out.bitfields.push(format!(
                "member `{member}` is a {bits}-bit field at bit {}",
                m.bit_offset()
            ));
            continue;
        }
        // A size the type chain does not give shows as a difference, never as a match.
        let size = btf
            .resolve_chained_type(m)
            .ok()
            .and_then(|t| type_size(btf, &t))
            .unwrap_or(usize::MAX);
        out.members
            .insert(member, ((m.bit_offset() / 8) as usize, size));
    }
    Some(out)
}

/// Every difference between the BTF and the tables, in words.
pub fn compare(btf: &Btf, structs: &[Struct], enums: &[Enum]) -> Vec<String> {
    let mut out = Vec::new();
    for want in structs {
        let Some(have) = btf_struct(btf, want.name) else {
            out.push(format!("struct {} is not in the module", want.name));
            continue;
        };
        if have.size != want.size {
            out.push(format!(
                "struct {} is {} bytes, the table says {}",
                want.name, have.size, want.size
            ));
        }
        for f in &have.bitfields {
            out.push(format!("struct {}: {f}", want.name));
        }
        for m in want.members {
            match have.members.get(m.name) {
                None => out.push(format!(
                    "struct {}: member `{}` (at {}, {} bytes in the table) is not in the module",
                    want.name, m.name, m.offset, m.size
                )),
                Some(&(offset, size)) if (offset, size) != (m.offset, m.size) => {
                    out.push(format!(
                        "struct {}: member `{}` is at {offset} ({size} bytes), the table says at {} ({} bytes)",
                        want.name, m.name, m.offset, m.size
                    ))
                }
                Some(_) => {}
            }
        }
        for (name, (offset, size)) in &have.members {
            if !want.members.iter().any(|m| m.name == name) {
                out.push(format!(
                    "struct {}: member `{name}` at {offset} ({size} bytes) is not in the table",
                    want.name
                ));
            }
        }
    }
    for want in enums {
        let Some(values) = btf_enum(btf, want.name) else {
            out.push(format!("enum {} is not in the module", want.name));
            continue;
        };
        for (name, value) in want.values {
            match values.get(*name) {
                None => out.push(format!(
                    "enum {}: {name} (= {value} in the table) is not in the module",
                    want.name
                )),
                Some(v) if v != value => out.push(format!(
                    "enum {}: {name} is {v}, the table says {value}",
                    want.name
                )),
                Some(_) => {}
            }
        }
        for (name, value) in &values {
            if !want.values.iter().any(|(n, _)| n == name) {
                out.push(format!(
                    "enum {}: {name} = {value} is not in the table",
                    want.name
                ));
            }
        }
    }
    out
}

/// The enumerators of enum `name` as the BTF has them.
fn btf_enum(btf: &Btf, name: &str) -> Option<BTreeMap<String, u64>> {
    let types = btf.resolve_types_by_name(name).ok()?;
    types.into_iter().find_map(|t| match t {
        Type::Enum(e) => Some(
            e.members
                .iter()
                .map(|m| (btf.resolve_name(m).unwrap_or_default(), u64::from(m.val())))
                .collect(),
        ),
        Type::Enum64(e) => Some(
            e.members
                .iter()
                .map(|m| (btf.resolve_name(m).unwrap_or_default(), m.val()))
                .collect(),
        ),
        _ => None,
    })
}

#[cfg(test)]
mod tests;
