//! Template rendering with the semantics of Python's
//! `string.Template.safe_substitute`, which the original ipxe-boot-server used,
//! so existing `boot.ipxe` files render byte for byte the same:
//!
//! - `$name` and `${name}` (name = `[_A-Za-z][_A-Za-z0-9]*`) are replaced when
//!   the variable is known and left exactly as written otherwise;
//! - `$$` becomes `$`;
//! - any other `$` is kept, so iPXE's own `${netX/mac}` or `${platform}` (when
//!   not a bootgate variable) pass through to iPXE untouched.

use std::collections::BTreeMap;

/// Variables available to a template.
pub type Vars = BTreeMap<String, String>;

enum Token<'a> {
    Text(&'a str),
    /// `$$`
    Escaped,
    /// `$name` or `${name}`; `raw` is the text as written.
    Var {
        name: &'a str,
        raw: &'a str,
    },
}

/// Renders `template`, leaving unknown variables as written.
pub fn safe_substitute(template: &str, vars: &Vars) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    for token in tokens(template) {
        match token {
            Token::Text(text) => out.push_str(text),
            Token::Escaped => out.push('$'),
            Token::Var { name, raw } => match vars.get(name) {
                Some(value) => out.push_str(value),
                None => out.push_str(raw),
            },
        }
    }
    out
}

/// Names of the `$name`/`${name}` references in `template`, each once, in order.
/// A checker compares them with the known variables to flag misspellings.
pub fn referenced_names(template: &str) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for token in tokens(template) {
        if let Token::Var { name, .. } = token
            && !names.contains(&name)
        {
            names.push(name);
        }
    }
    names
}

fn tokens(template: &str) -> impl Iterator<Item = Token<'_>> {
    let bytes = template.as_bytes();
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= bytes.len() {
            return None;
        }
        if bytes[pos] != b'$' {
            let end = template[pos..].find('$').map_or(bytes.len(), |i| pos + i);
            let text = &template[pos..end];
            pos = end;
            return Some(Token::Text(text));
        }
        let start = pos;
        let rest = &bytes[pos + 1..];
        if rest.first() == Some(&b'$') {
            pos += 2;
            return Some(Token::Escaped);
        }
        let ident = ident_len(rest);
        if ident > 0 {
            pos += 1 + ident;
            return Some(Token::Var {
                name: &template[start + 1..pos],
                raw: &template[start..pos],
            });
        }
        if rest.first() == Some(&b'{') {
            let inner = ident_len(&rest[1..]);
            if inner > 0 && rest.get(1 + inner) == Some(&b'}') {
                pos += 3 + inner;
                return Some(Token::Var {
                    name: &template[start + 2..start + 2 + inner],
                    raw: &template[start..pos],
                });
            }
        }
        // An invalid placeholder: safe_substitute keeps the `$` and goes on.
        pos += 1;
        Some(Token::Text("$"))
    })
}

/// Length of the identifier at the start of `s` (0 when there is none).
fn ident_len(s: &[u8]) -> usize {
    match s.first() {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
            1 + s[1..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .count()
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    // Expected outputs below were produced by Python 3.11:
    // string.Template(t).safe_substitute(v)
    #[test]
    fn matches_python_safe_substitute() {
        let v = vars(&[("name", "gw1"), ("fp", "abc"), ("_x1", "X")]);
        let cases = [
            ("plain text", "plain text"),
            ("$name", "gw1"),
            ("${name}", "gw1"),
            ("$names", "$names"),
            ("${name}s", "gw1s"),
            ("$$name", "$name"),
            ("$$$name", "$gw1"),
            ("$unknown ${unknown}", "$unknown ${unknown}"),
            ("${netX/mac}", "${netX/mac}"),
            ("${net0.dhcp/mac}", "${net0.dhcp/mac}"),
            ("$", "$"),
            ("a$", "a$"),
            ("$ $1 ${ ${} ${name", "$ $1 ${ ${} ${name"),
            ("$_x1$fp", "Xabc"),
            ("${fp}:${fp}", "abc:abc"),
            ("é$name€", "égw1€"),
        ];
        for (template, expected) in cases {
            assert_eq!(
                safe_substitute(template, &v),
                expected,
                "template {template:?}"
            );
        }
    }

    #[test]
    fn lists_referenced_names_once() {
        let t = "$a ${b} $a $$c ${netX/mac} ${d}e";
        assert_eq!(referenced_names(t), ["a", "b", "d"]);
    }
}
