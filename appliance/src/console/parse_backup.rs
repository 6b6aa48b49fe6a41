//! `system config export|import ...` lines → [`ConfigRequest`].

use super::parse::{clip, err, ParseError};
use super::request::ConfigRequest;

const HINT: &str = "e.g. 'system config export media/tank.tankexp [secrets]' or \
                    'system config import media/tank.tankexp'";

/// A file inside a dataset, as the `file` commands take it: `DATASET/relative/path`, no `..`,
/// not absolute, naming a file rather than the dataset itself.
fn file_path(text: &str) -> Result<String, ParseError> {
    let (_, rel) = crate::storage::files::split(text).map_err(|e| err(e.to_string(), HINT))?;
    if rel.as_os_str().is_empty() {
        return Err(err(
            format!("'{}' names a dataset, not a file in it", clip(text)),
            HINT,
        ));
    }
    Ok(text.to_owned())
}

pub fn parse_config(rest: &[&str]) -> Result<ConfigRequest, ParseError> {
    match rest {
        ["export", path] => Ok(ConfigRequest::Export {
            path: file_path(path)?,
            secrets: false,
        }),
        ["export", path, "secrets"] => Ok(ConfigRequest::Export {
            path: file_path(path)?,
            secrets: true,
        }),
        ["export", _, other, ..] => Err(err(
            format!("unexpected '{}'", clip(other)),
            "the only option is 'secrets'",
        )),
        ["import", path] => Ok(ConfigRequest::Import {
            path: file_path(path)?,
            seen: None,
            confirmed: false,
        }),
        ["import", _, other, ..] => Err(err(
            format!("unexpected '{}'", clip(other)),
            "'system config import' takes only the path",
        )),
        [verb @ ("export" | "import")] => {
            Err(err(format!("'system config {verb}' needs a path"), HINT))
        }
        [] => Err(err("'system config' needs a verb", HINT)),
        [verb, ..] => Err(err(
            format!("'system config' has no verb '{}'", clip(verb)),
            HINT,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<&str> {
        line.split_whitespace().collect()
    }

    #[test]
    fn export_and_import() {
        assert_eq!(
            parse_config(&words("export media/backup/tank.exp")),
            Ok(ConfigRequest::Export {
                path: "media/backup/tank.exp".into(),
                secrets: false
            })
        );
        assert_eq!(
            parse_config(&words("export media/tank.exp secrets")),
            Ok(ConfigRequest::Export {
                path: "media/tank.exp".into(),
                secrets: true
            })
        );
        assert_eq!(
            parse_config(&words("import media/tank.exp")),
            Ok(ConfigRequest::Import {
                path: "media/tank.exp".into(),
                seen: None,
                confirmed: false
            })
        );
        for (line, says) in [
            ("export ../etc/passwd", "not a path inside a dataset"),
            ("export /etc/passwd", "not a path inside a dataset"),
            ("export media/../x", "not a path inside a dataset"),
            ("import media/a/../../x", "not a path inside a dataset"),
            ("export media", "names a dataset, not a file"),
            ("export media/x everything", "the only option is 'secrets'"),
            ("import media/x secrets", "takes only the path"),
            ("import", "needs a path"),
            ("restore media/x", "no verb 'restore'"),
        ] {
            let e = parse_config(&words(line)).unwrap_err();
            assert!(
                e.message.contains(says) || e.hint.contains(says),
                "{line}: {e}"
            );
        }
    }

    /// The whole line through the console's parser, and the confirmation's answer.
    #[test]
    fn through_the_console() {
        use crate::console::parse::{parse, Parsed};
        use crate::console::Request;
        let Ok(Parsed::Request(request)) = parse("system config import media/tank.exp") else {
            panic!("not parsed");
        };
        let Request::Config(ConfigRequest::Import { confirmed, .. }) =
            request.with_confirmation("yes".into())
        else {
            panic!("not an import");
        };
        assert!(confirmed);
    }
}
