//! Console text → requests for the file servers and their accounts: the nouns `nfs`, `smb`,
//! `user` and `group`. Options are `key value` pairs or single flags, in any order; lists are
//! comma-separated (`users alice,@media`, `clients 10.0.3.0/24,192.168.1.7`).

use super::parse::{clip, err, unknown_verb, usage_hint, ParseError};
use super::request::{
    AccountRef, GroupRequest, NfsOptions, NfsRequest, SmbGlobalOptions, SmbRequest,
    SmbShareOptions, SquashSpec, UserRequest,
};
use crate::config::sharing::{parse_veto, parse_workgroup, Encryption, Signing, SmbProtocol};
use crate::config::{ClientSpec, DatasetName, Gid, GroupName, Principal, ShareName, Uid, UserName};

fn dataset(text: &str) -> Result<DatasetName, ParseError> {
    DatasetName::parse(text).map_err(|e| err(e.to_string(), "'dataset list' shows them"))
}

fn user(text: &str) -> Result<UserName, ParseError> {
    UserName::parse(text).map_err(|e| err(e.to_string(), "'user list' shows them"))
}

fn group(text: &str) -> Result<GroupName, ParseError> {
    GroupName::parse(text).map_err(|e| err(e.to_string(), "'group list' shows them"))
}

fn share(text: &str) -> Result<ShareName, ParseError> {
    ShareName::parse(text).map_err(|e| err(e.to_string(), "'smb share list' shows them"))
}

fn clients(text: &str) -> Result<Vec<ClientSpec>, ParseError> {
    ClientSpec::parse_list(text).map_err(|e| {
        err(
            e.to_string(),
            "separate several with commas, e.g. 10.0.3.0/24,192.168.1.7",
        )
    })
}

fn groups(text: &str) -> Result<Vec<GroupName>, ParseError> {
    if text == "none" {
        return Ok(Vec::new());
    }
    text.split(',')
        .filter(|g| !g.is_empty())
        .map(group)
        .collect()
}

/// `alice,@media` → users and groups; `none` or `*` → the empty list (everyone).
fn principals(text: &str) -> Result<Vec<Principal>, ParseError> {
    if text == "none" || text == "*" {
        return Ok(Vec::new());
    }
    text.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| match p.strip_prefix('@') {
            Some(g) => group(g).map(Principal::Group),
            None => user(p).map(Principal::User),
        })
        .collect()
}

fn yes_no(key: &str, text: &str) -> Result<bool, ParseError> {
    match text {
        "yes" | "on" | "true" => Ok(true),
        "no" | "off" | "false" => Ok(false),
        other => Err(err(
            format!("'{}' is not yes or no", clip(other)),
            format!("write '{key} yes' or '{key} no'"),
        )),
    }
}

fn mask(text: &str) -> Result<u32, ParseError> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    let ok = !digits.is_empty() && digits.bytes().all(|b| (b'0'..=b'7').contains(&b));
    match u32::from_str_radix(digits, 8) {
        Ok(bits) if ok && bits <= 0o777 => Ok(bits),
        _ => Err(err(
            format!("'{}' is not a permission mask", clip(text)),
            "write octal bits up to 0777, e.g. 0664",
        )),
    }
}

/// `alice` or `UID:GID` (or a bare UID, its group the same number).
fn account(text: &str) -> Result<AccountRef, ParseError> {
    if text.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
        let hint = "write a user name, or UID:GID as numbers, e.g. 1000:1000";
        let (u, g) = text.split_once(':').unwrap_or((text, text));
        let uid = Uid::parse(u).map_err(|e| err(e.to_string(), hint))?;
        let gid = Gid::parse(g).map_err(|e| err(e.to_string(), hint))?;
        return Ok(AccountRef::Ids {
            uid: uid.get(),
            gid: gid.get(),
        });
    }
    user(text).map(AccountRef::User)
}

/// What an option handler did with a word.
enum Took {
    /// A flag: one word.
    Flag,
    /// A key and its value: two words.
    Pair,
    /// Not an option it knows.
    Unknown,
}

/// Walks options: `handle(word, next)` says whether `word` is a flag, a key taking `next` as
/// its value, or unknown.
fn options(
    words: &[&str],
    known: &str,
    mut handle: impl FnMut(&str, Option<&str>) -> Result<Took, ParseError>,
) -> Result<(), ParseError> {
    let mut i = 0;
    while i < words.len() {
        let key = words[i];
        match handle(key, words.get(i + 1).copied())? {
            Took::Flag => i += 1,
            Took::Pair => i += 2,
            Took::Unknown => {
                return Err(err(
                    format!("'{}' is not an option or needs a value", clip(key)),
                    format!("the options are: {known}"),
                ))
            }
        }
    }
    Ok(())
}

const NFS_OPTIONS: &str =
    "ro, rw, clients LIST, root_squash, no_root_squash, maproot USER, mapall USER, insecure, secure";

fn nfs_options(words: &[&str]) -> Result<NfsOptions, ParseError> {
    let mut o = NfsOptions::default();
    options(words, NFS_OPTIONS, |key, value| {
        match key {
            "ro" | "readonly" => o.read_only = Some(true),
            "rw" => o.read_only = Some(false),
            "insecure" => o.insecure = Some(true),
            "secure" => o.insecure = Some(false),
            "root_squash" => o.squash = Some(SquashSpec::RootToNobody),
            "no_root_squash" => o.squash = Some(SquashSpec::None),
            _ => {
                let Some(value) = value else {
                    return Ok(Took::Unknown);
                };
                match key {
                    "clients" | "hosts" => o.clients = Some(clients(value)?),
                    "maproot" => o.squash = Some(SquashSpec::MapRoot(account(value)?)),
                    "mapall" => o.squash = Some(SquashSpec::MapAll(account(value)?)),
                    _ => return Ok(Took::Unknown),
                }
                return Ok(Took::Pair);
            }
        }
        Ok(Took::Flag)
    })?;
    Ok(o)
}

pub fn parse_nfs(rest: &[&str]) -> Result<NfsRequest, ParseError> {
    let rest = match rest {
        ["share", tail @ ..] => tail,
        other => other,
    };
    match rest {
        ["list"] | [] => Ok(NfsRequest::List),
        ["add", ds, opts @ ..] => Ok(NfsRequest::Add {
            dataset: dataset(ds)?,
            options: nfs_options(opts)?,
        }),
        ["set", ds, opts @ ..] => {
            let options = nfs_options(opts)?;
            if options == NfsOptions::default() {
                return Err(err(
                    "'nfs share set' needs an option",
                    format!("the options are: {NFS_OPTIONS}"),
                ));
            }
            Ok(NfsRequest::Set {
                dataset: dataset(ds)?,
                options,
            })
        }
        ["remove" | "rm", ds] => Ok(NfsRequest::Remove {
            dataset: dataset(ds)?,
        }),
        ["add" | "set" | "remove" | "rm"] => Err(err(
            "a dataset name is needed",
            "e.g. 'nfs share add vms clients 10.0.3.0/24'",
        )),
        [verb, ..] => Err(unknown_verb("nfs", verb)),
    }
}

const SMB_SHARE_OPTIONS: &str =
    "dataset DS, comment TEXT, ro, rw, users LIST, readonly_users LIST, \
     guest yes|no, hosts_allow LIST, hosts_deny LIST, force_user USER|none, \
     force_group GROUP|none, create_mask OCTAL, directory_mask OCTAL, browseable yes|no, \
     veto LIST";

fn smb_share_options(words: &[&str]) -> Result<SmbShareOptions, ParseError> {
    let mut o = SmbShareOptions::default();
    options(words, SMB_SHARE_OPTIONS, |key, value| {
        match key {
            "ro" | "readonly" => {
                o.read_only = Some(true);
                return Ok(Took::Flag);
            }
            "rw" => {
                o.read_only = Some(false);
                return Ok(Took::Flag);
            }
            _ => {}
        }
        let Some(value) = value else {
            return Ok(Took::Unknown);
        };
        match key {
            "dataset" => o.dataset = Some(dataset(value)?),
            "comment" => {
                if value.chars().count() > 200 || value.chars().any(char::is_control) {
                    return Err(err(
                        "the comment is too long or holds control characters",
                        "use up to 200 printable characters",
                    ));
                }
                o.comment = Some(value.to_owned());
            }
            "users" | "valid_users" => o.valid_users = Some(principals(value)?),
            "readonly_users" | "read_only_users" => o.read_only_users = Some(principals(value)?),
            "guest" | "guest_ok" => o.guest_ok = Some(yes_no(key, value)?),
            "hosts_allow" => o.hosts_allow = Some(clients(value)?),
            "hosts_deny" => o.hosts_deny = Some(clients(value)?),
            "force_user" => {
                o.force_user = Some(match value {
                    "none" => None,
                    v => Some(user(v)?),
                })
            }
            "force_group" => {
                o.force_group = Some(match value {
                    "none" => None,
                    v => Some(group(v)?),
                })
            }
            "create_mask" => o.create_mask = Some(mask(value)?),
            "directory_mask" | "dir_mask" => o.directory_mask = Some(mask(value)?),
            "browseable" | "browsable" => o.browseable = Some(yes_no(key, value)?),
            "veto" => {
                o.veto = Some(if value == "none" {
                    Vec::new()
                } else {
                    value
                        .split(',')
                        .filter(|p| !p.is_empty())
                        .map(|p| {
                            parse_veto(p)
                                .map_err(|e| err(e.to_string(), "e.g. veto *.tmp,.DS_Store"))
                        })
                        .collect::<Result<_, _>>()?
                })
            }
            _ => return Ok(Took::Unknown),
        }
        Ok(Took::Pair)
    })?;
    Ok(o)
}

const SMB_SETTINGS: &str = "workgroup NAME, min_protocol 2.1|3.0, signing auto|mandatory, \
     encryption auto|off|required";

fn smb_settings(words: &[&str]) -> Result<SmbGlobalOptions, ParseError> {
    let mut o = SmbGlobalOptions::default();
    options(words, SMB_SETTINGS, |key, value| {
        let Some(value) = value else {
            return Ok(Took::Unknown);
        };
        match (key, value) {
            ("workgroup", v) => {
                o.workgroup = Some(
                    parse_workgroup(v)
                        .map_err(|e| err(e.to_string(), "e.g. 'smb set workgroup HOME'"))?,
                )
            }
            ("min_protocol", "2.1" | "smb2.1" | "SMB2_10") => {
                o.min_protocol = Some(SmbProtocol::Smb2_1)
            }
            ("min_protocol", "3.0" | "smb3.0" | "SMB3_00") => {
                o.min_protocol = Some(SmbProtocol::Smb3_0)
            }
            ("signing", "auto") => o.signing = Some(Signing::Auto),
            ("signing", "mandatory" | "required") => o.signing = Some(Signing::Mandatory),
            ("encryption", "auto") => o.encryption = Some(Encryption::Auto),
            ("encryption", "off") => o.encryption = Some(Encryption::Off),
            ("encryption", "required" | "mandatory") => o.encryption = Some(Encryption::Required),
            ("min_protocol" | "signing" | "encryption", v) => {
                return Err(err(
                    format!("'{}' is not a value for {key}", clip(v)),
                    format!("the settings are: {SMB_SETTINGS}"),
                ))
            }
            _ => return Ok(Took::Unknown),
        }
        Ok(Took::Pair)
    })?;
    if o == SmbGlobalOptions::default() {
        return Err(err(
            "'smb set' needs a setting and a value",
            format!("the settings are: {SMB_SETTINGS}"),
        ));
    }
    Ok(o)
}

pub fn parse_smb(rest: &[&str]) -> Result<SmbRequest, ParseError> {
    match rest {
        ["status"] | ["show"] | [] => Ok(SmbRequest::Show),
        ["set", settings @ ..] => Ok(SmbRequest::Set(smb_settings(settings)?)),
        ["share", "list"] | ["share"] | ["list"] => Ok(SmbRequest::ShareList),
        ["share", "add", name, opts @ ..] => Ok(SmbRequest::ShareAdd {
            name: share(name)?,
            options: Box::new(smb_share_options(opts)?),
        }),
        ["share", "set", name, opts @ ..] => {
            let options = smb_share_options(opts)?;
            if options == SmbShareOptions::default() {
                return Err(err(
                    "'smb share set' needs an option",
                    format!("the options are: {SMB_SHARE_OPTIONS}"),
                ));
            }
            Ok(SmbRequest::ShareSet {
                name: share(name)?,
                options: Box::new(options),
            })
        }
        ["share", "remove" | "rm", name] => Ok(SmbRequest::ShareRemove { name: share(name)? }),
        ["share", "add" | "set" | "remove" | "rm"] => Err(err(
            "a share name is needed",
            "e.g. 'smb share add media users alice,@media'",
        )),
        ["share", verb, ..] => Err(err(
            format!("'smb share' has no verb '{}'", clip(verb)),
            "use list, add, set or remove",
        )),
        [verb, ..] => Err(unknown_verb("smb", verb)),
    }
}

pub fn parse_user(rest: &[&str]) -> Result<UserRequest, ParseError> {
    match rest {
        ["list"] | [] => Ok(UserRequest::List),
        ["add", name, opts @ ..] => {
            let mut uid = None;
            let mut member_of = Vec::new();
            options(opts, "uid N, groups G,G", |key, value| {
                let Some(value) = value else {
                    return Ok(Took::Unknown);
                };
                match key {
                    "uid" => {
                        uid = Some(
                            Uid::parse(value)
                                .map_err(|e| err(e.to_string(), "e.g. 'uid 1000'"))?
                                .get(),
                        )
                    }
                    "groups" | "group" => member_of = groups(value)?,
                    _ => return Ok(Took::Unknown),
                }
                Ok(Took::Pair)
            })?;
            Ok(UserRequest::Add {
                name: user(name)?,
                uid,
                groups: member_of,
                password: None,
            })
        }
        ["passwd" | "password", name] => Ok(UserRequest::Passwd {
            name: user(name)?,
            password: None,
        }),
        ["set", name, "groups", list] => Ok(UserRequest::Set {
            name: user(name)?,
            groups: groups(list)?,
        }),
        ["set", ..] => Err(err(
            "'user set' changes a user's groups",
            "e.g. 'user set alice groups media,family' or 'user set alice groups none'",
        )),
        ["remove" | "rm", name] => Ok(UserRequest::Remove { name: user(name)? }),
        ["add" | "passwd" | "password" | "remove" | "rm"] => {
            Err(err("a user name is needed", usage_hint("user")))
        }
        [verb, ..] => Err(unknown_verb("user", verb)),
    }
}

pub fn parse_group(rest: &[&str]) -> Result<GroupRequest, ParseError> {
    match rest {
        ["list"] | [] => Ok(GroupRequest::List),
        ["add", name] => Ok(GroupRequest::Add {
            name: group(name)?,
            gid: None,
        }),
        ["add", name, "gid", gid] => Ok(GroupRequest::Add {
            name: group(name)?,
            gid: Some(
                Gid::parse(gid)
                    .map_err(|e| err(e.to_string(), "e.g. 'group add media gid 2000'"))?
                    .get(),
            ),
        }),
        ["remove" | "rm", name] => Ok(GroupRequest::Remove { name: group(name)? }),
        ["add" | "remove" | "rm", ..] => Err(err(
            "a group name is needed",
            "e.g. 'group add media' or 'group add media gid 2000'",
        )),
        [verb, ..] => Err(unknown_verb("group", verb)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::sharing::ClientSpec;

    #[test]
    fn nfs_commands() {
        let r = parse_nfs(&[
            "share",
            "add",
            "vms",
            "clients",
            "10.0.3.0/24",
            "no_root_squash",
            "insecure",
        ])
        .unwrap();
        let NfsRequest::Add { dataset, options } = r else {
            panic!("{r:?}")
        };
        assert_eq!(dataset.as_str(), "vms");
        assert_eq!(
            options.clients,
            Some(vec![ClientSpec::parse("10.0.3.0/24").unwrap()])
        );
        assert_eq!(options.squash, Some(SquashSpec::None));
        assert_eq!(options.insecure, Some(true));
        let r = parse_nfs(&["set", "vms", "maproot", "1000:100", "ro"]).unwrap();
        assert!(
            matches!(
                r,
                NfsRequest::Set {
                    options: NfsOptions {
                        squash: Some(SquashSpec::MapRoot(AccountRef::Ids {
                            uid: 1000,
                            gid: 100
                        })),
                        read_only: Some(true),
                        ..
                    },
                    ..
                }
            ),
            "{r:?}"
        );
        let r = parse_nfs(&["set", "vms", "mapall", "alice"]).unwrap();
        assert!(matches!(
            r,
            NfsRequest::Set {
                options: NfsOptions {
                    squash: Some(SquashSpec::MapAll(AccountRef::User(_))),
                    ..
                },
                ..
            }
        ));
        for (words, says) in [
            (&["add"][..], "dataset name"),
            (&["set", "vms"][..], "needs an option"),
            (&["add", "vms", "clients", "nas.local"][..], "host names"),
            (&["add", "vms", "fast"][..], "'fast'"),
            (&["add", "vms", "maproot"][..], "'maproot'"),
            (&["frobnicate"][..], "no verb"),
            (&["add", "../x"][..], ".."),
        ] {
            let message = parse_nfs(words).unwrap_err().to_string();
            assert!(message.contains(says), "{words:?}: {message}");
        }
    }

    #[test]
    fn smb_commands() {
        let r = parse_smb(&[
            "share",
            "add",
            "media",
            "users",
            "alice,@media",
            "force_user",
            "sonarr",
            "create_mask",
            "0664",
            "veto",
            "*.tmp,.DS_Store",
            "guest",
            "yes",
            "browseable",
            "no",
        ])
        .unwrap();
        let SmbRequest::ShareAdd { name, options } = r else {
            panic!("{r:?}")
        };
        assert_eq!(name.as_str(), "media");
        assert_eq!(options.valid_users.as_ref().map(Vec::len), Some(2));
        assert_eq!(options.create_mask, Some(0o664));
        assert_eq!(options.veto.as_ref().map(Vec::len), Some(2));
        assert_eq!(options.guest_ok, Some(true));
        assert_eq!(options.browseable, Some(false));
        assert!(matches!(
            parse_smb(&["set", "signing", "mandatory", "min_protocol", "3.0"]).unwrap(),
            SmbRequest::Set(SmbGlobalOptions {
                signing: Some(Signing::Mandatory),
                min_protocol: Some(SmbProtocol::Smb3_0),
                ..
            })
        ));
        for (words, says) in [
            (&["set"][..], "needs a setting"),
            (&["set", "signing", "maybe"][..], "'maybe'"),
            (&["share", "add", "ipc$"][..], "'$'"),
            (&["share", "set", "media"][..], "needs an option"),
            (&["share", "add", "m", "create_mask", "0999"][..], "mask"),
            (&["share", "add", "m", "guest", "perhaps"][..], "yes or no"),
            (&["share", "add", "m", "users", "Bob"][..], "'B'"),
        ] {
            let message = parse_smb(words).unwrap_err().to_string();
            assert!(message.contains(says), "{words:?}: {message}");
        }
    }

    #[test]
    fn account_commands() {
        assert_eq!(
            parse_user(&["add", "alice", "uid", "1500", "groups", "media"]).unwrap(),
            UserRequest::Add {
                name: UserName::parse("alice").unwrap(),
                uid: Some(1500),
                groups: vec![GroupName::parse("media").unwrap()],
                password: None
            }
        );
        assert!(matches!(
            parse_user(&["passwd", "alice"]).unwrap(),
            UserRequest::Passwd { password: None, .. }
        ));
        assert!(
            matches!(parse_user(&["set", "alice", "groups", "none"]).unwrap(), UserRequest::Set { groups, .. } if groups.is_empty())
        );
        assert!(parse_user(&["add", "root"])
            .unwrap_err()
            .to_string()
            .contains("reserved"));
        assert!(parse_user(&["add", "x", "uid", "-1"]).is_err());
        assert_eq!(
            parse_group(&["add", "media", "gid", "2000"]).unwrap(),
            GroupRequest::Add {
                name: GroupName::parse("media").unwrap(),
                gid: Some(2000)
            }
        );
        assert!(parse_group(&["add"]).is_err());
    }
}
