//! Browse paths as written in a node map or as a device's `root`: the text format of an OPC UA
//! RelativePath (Part 4, Annex A.2) with namespace *aliases* in place of namespace indexes,
//! parsed and bounded at config load ([`BrowsePath::parse`]) and turned into the
//! [`RelativePath`] of a TranslateBrowsePathsToNodeIds request once the server's namespace
//! array is known ([`BrowsePath::to_relative_path`]).
//!
//! Grammar (documented in docs/opcua.md):
//!
//! ```text
//! path      = element { element }
//! element   = reference [ alias ":" ] name
//! reference = "/"                      HierarchicalReferences and subtypes, forward
//!           | "."                      Aggregates and subtypes, forward
//!           | "<" { "#" | "!" } type ">"   a standard reference type; # = no subtypes, ! = inverse
//! name      = one or more characters; "/ . < > : # ! &" escaped with "&"
//! ```
//!
//! A name without an alias is in namespace 0, as in Part 4.

use opcua::types::{NodeId, QualifiedName, ReferenceTypeId, RelativePath, RelativePathElement};
use std::fmt;

/// Most elements a path may have.
pub const MAX_ELEMENTS: usize = 32;
/// Longest path text, in bytes.
pub const MAX_TEXT: usize = 1024;
/// Longest browse name of one element, in characters.
pub const MAX_NAME: usize = 256;
/// Longest namespace alias, in bytes.
pub const MAX_ALIAS: usize = 32;

/// Characters with a meaning in the path text; `&` escapes them inside a name.
const RESERVED: &str = "/.<>:#!&";

/// The standard (namespace 0) reference types a path may name between `<` and `>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefType {
    /// `HierarchicalReferences` (what `/` follows).
    HierarchicalReferences,
    /// `HasChild`.
    HasChild,
    /// `Aggregates` (what `.` follows).
    Aggregates,
    /// `HasComponent`.
    HasComponent,
    /// `HasOrderedComponent`.
    HasOrderedComponent,
    /// `HasProperty`.
    HasProperty,
    /// `Organizes`.
    Organizes,
    /// `HasEventSource`.
    HasEventSource,
    /// `HasNotifier`.
    HasNotifier,
    /// `HasAddIn`.
    HasAddIn,
}

const REF_TYPES: [(&str, RefType); 10] = [
    ("HierarchicalReferences", RefType::HierarchicalReferences),
    ("HasChild", RefType::HasChild),
    ("Aggregates", RefType::Aggregates),
    ("HasComponent", RefType::HasComponent),
    ("HasOrderedComponent", RefType::HasOrderedComponent),
    ("HasProperty", RefType::HasProperty),
    ("Organizes", RefType::Organizes),
    ("HasEventSource", RefType::HasEventSource),
    ("HasNotifier", RefType::HasNotifier),
    ("HasAddIn", RefType::HasAddIn),
];

impl RefType {
    fn name(self) -> &'static str {
        REF_TYPES.iter().find(|(_, t)| *t == self).map_or("?", |(n, _)| n)
    }

    fn node_id(self) -> NodeId {
        let id = match self {
            RefType::HierarchicalReferences => ReferenceTypeId::HierarchicalReferences,
            RefType::HasChild => ReferenceTypeId::HasChild,
            RefType::Aggregates => ReferenceTypeId::Aggregates,
            RefType::HasComponent => ReferenceTypeId::HasComponent,
            RefType::HasOrderedComponent => ReferenceTypeId::HasOrderedComponent,
            RefType::HasProperty => ReferenceTypeId::HasProperty,
            RefType::Organizes => ReferenceTypeId::Organizes,
            RefType::HasEventSource => ReferenceTypeId::HasEventSource,
            RefType::HasNotifier => ReferenceTypeId::HasNotifier,
            RefType::HasAddIn => ReferenceTypeId::HasAddIn,
        };
        id.into()
    }
}

/// The reference an element follows from the node before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reference {
    /// The reference type.
    pub kind: RefType,
    /// Subtypes of `kind` match too (`#` turns this off).
    pub include_subtypes: bool,
    /// Followed backwards (`!`).
    pub inverse: bool,
}

impl Reference {
    const SLASH: Reference =
        Reference { kind: RefType::HierarchicalReferences, include_subtypes: true, inverse: false };
    const DOT: Reference = Reference { kind: RefType::Aggregates, include_subtypes: true, inverse: false };
}

/// One step of a path: a reference to follow and the browse name of its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathElement {
    /// The reference followed.
    pub reference: Reference,
    /// Namespace alias of the browse name; none: namespace 0.
    pub alias: Option<String>,
    /// The browse name (escapes removed).
    pub name: String,
}

/// A parsed browse path (relative to a start node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowsePath {
    /// The steps, at least one and at most [`MAX_ELEMENTS`].
    pub elements: Vec<PathElement>,
}

/// Why a browse path cannot be used; the text names the part at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Nothing but whitespace.
    #[error("browse path is empty")]
    Empty,
    /// Longer than [`MAX_TEXT`].
    #[error("browse path is {len} bytes long, at most {MAX_TEXT} are allowed")]
    TooLong {
        /// Length of the text in bytes.
        len: usize,
    },
    /// More than [`MAX_ELEMENTS`] elements.
    #[error("browse path has more than {MAX_ELEMENTS} elements")]
    TooManyElements,
    /// The text does not start with `/`, `.` or `<`.
    #[error("browse path {text:?} must start with '/', '.' or '<'")]
    NoReference {
        /// The path as written.
        text: String,
    },
    /// An element without a browse name (`//`, a trailing `/`, `imm:`).
    #[error("element {element} of the browse path has no browse name")]
    EmptyName {
        /// 1-based element number.
        element: usize,
    },
    /// A browse name longer than [`MAX_NAME`].
    #[error("element {element} of the browse path: browse name longer than {MAX_NAME} characters")]
    NameTooLong {
        /// 1-based element number.
        element: usize,
    },
    /// A browse name with leading or trailing whitespace or a control character.
    #[error(
        "element {element} of the browse path: browse name {name:?} has surrounding whitespace or a control character"
    )]
    BadName {
        /// 1-based element number.
        element: usize,
        /// The name as parsed.
        name: String,
    },
    /// A reserved character that should have been escaped, or an `&` before an ordinary one.
    #[error(
        "element {element} of the browse path: {found:?} must be escaped as '&{found}' (reserved: {RESERVED})"
    )]
    Reserved {
        /// 1-based element number.
        element: usize,
        /// The character.
        found: char,
    },
    /// `&` not followed by a reserved character.
    #[error("element {element} of the browse path: '&' must be followed by one of {RESERVED}")]
    BadEscape {
        /// 1-based element number.
        element: usize,
    },
    /// A namespace alias that is not a word (letters, digits, `_`, `-`, starting with a letter).
    #[error(
        "element {element} of the browse path: namespace alias {alias:?} must be a letter followed by letters, digits, '_' or '-' (at most {MAX_ALIAS})"
    )]
    BadAlias {
        /// 1-based element number.
        element: usize,
        /// The alias as written.
        alias: String,
    },
    /// `<…` without `>`.
    #[error("element {element} of the browse path: '<' without a closing '>'")]
    Unclosed {
        /// 1-based element number.
        element: usize,
    },
    /// `<Name>` naming no standard reference type.
    #[error(
        "element {element} of the browse path: unknown reference type {name:?} (known: {})",
        known_types()
    )]
    UnknownReferenceType {
        /// 1-based element number.
        element: usize,
        /// The name between `<` and `>`.
        name: String,
    },
    /// An alias that neither the node map nor the device defines.
    #[error(
        "namespace alias {alias:?} is defined neither in the node map's [namespaces] nor in the device's opcua.namespaces"
    )]
    UnknownAlias {
        /// The alias.
        alias: String,
    },
    /// An alias whose URI is not in the server's namespace array.
    #[error("namespace alias {alias:?} = {uri:?} is not in the server's namespace array")]
    UnknownNamespace {
        /// The alias.
        alias: String,
        /// Its namespace URI.
        uri: String,
    },
}

fn known_types() -> String {
    REF_TYPES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

impl BrowsePath {
    /// True when `text` is meant as a browse path rather than a node id (it starts with a
    /// reference: `/`, `.` or `<`; node ids never do).
    pub fn looks_like_path(text: &str) -> bool {
        text.trim_start().starts_with(['/', '.', '<'])
    }

    /// Parses the text format (see the module docs), bounded by [`MAX_TEXT`],
    /// [`MAX_ELEMENTS`] and [`MAX_NAME`].
    pub fn parse(text: &str) -> Result<BrowsePath, PathError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(PathError::Empty);
        }
        if text.len() > MAX_TEXT {
            return Err(PathError::TooLong { len: text.len() });
        }
        if !Self::looks_like_path(text) {
            return Err(PathError::NoReference { text: text.to_string() });
        }
        let mut elements = Vec::new();
        let mut chars = text.chars().peekable();
        while chars.peek().is_some() {
            let element = elements.len() + 1;
            if element > MAX_ELEMENTS {
                return Err(PathError::TooManyElements);
            }
            let reference = match chars.next() {
                Some('/') => Reference::SLASH,
                Some('.') => Reference::DOT,
                Some('<') => reference_type(&mut chars, element)?,
                // A name always ends at an unescaped reference character.
                _ => return Err(PathError::NoReference { text: text.to_string() }),
            };
            let (alias, name) = element_name(&mut chars, element)?;
            elements.push(PathElement { reference, alias, name });
        }
        Ok(BrowsePath { elements })
    }

    /// The aliases the path uses, in order (with repeats).
    pub fn aliases(&self) -> impl Iterator<Item = &str> {
        self.elements.iter().filter_map(|e| e.alias.as_deref())
    }

    /// The RelativePath of a TranslateBrowsePathsToNodeIds request, each alias mapped to its
    /// namespace index by `index` (which says why it cannot).
    pub fn to_relative_path(
        &self,
        index: impl Fn(&str) -> Result<u16, PathError>,
    ) -> Result<RelativePath, PathError> {
        let elements = self
            .elements
            .iter()
            .map(|e| {
                let ns = e.alias.as_deref().map_or(Ok(0), &index)?;
                Ok(RelativePathElement {
                    reference_type_id: e.reference.kind.node_id(),
                    is_inverse: e.reference.inverse,
                    include_subtypes: e.reference.include_subtypes,
                    target_name: QualifiedName::new(ns, e.name.as_str()),
                })
            })
            .collect::<Result<Vec<_>, PathError>>()?;
        Ok(RelativePath { elements: Some(elements) })
    }
}

/// `<` already taken: `[#][!]Type>`.
fn reference_type(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    element: usize,
) -> Result<Reference, PathError> {
    let mut inner = String::new();
    loop {
        match chars.next() {
            None => return Err(PathError::Unclosed { element }),
            Some('>') => break,
            Some(c) if inner.len() >= 64 || c == '<' => return Err(PathError::Unclosed { element }),
            Some(c) => inner.push(c),
        }
    }
    let mut name = inner.as_str();
    let (mut include_subtypes, mut inverse) = (true, false);
    loop {
        if let Some(rest) = name.strip_prefix('#').filter(|_| include_subtypes) {
            include_subtypes = false;
            name = rest;
        } else if let Some(rest) = name.strip_prefix('!').filter(|_| !inverse) {
            inverse = true;
            name = rest;
        } else {
            break;
        }
    }
    let kind = REF_TYPES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .ok_or_else(|| PathError::UnknownReferenceType { element, name: name.to_string() })?;
    Ok(Reference { kind, include_subtypes, inverse })
}

/// The `[alias:]name` of one element, up to the next unescaped reference character.
fn element_name(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    element: usize,
) -> Result<(Option<String>, String), PathError> {
    let mut alias = None;
    let mut name = String::new();
    while let Some(&c) = chars.peek() {
        match c {
            '/' | '.' | '<' => break,
            '&' => {
                chars.next();
                match chars.next() {
                    Some(e) if RESERVED.contains(e) => name.push(e),
                    _ => return Err(PathError::BadEscape { element }),
                }
                if name.chars().count() > MAX_NAME {
                    return Err(PathError::NameTooLong { element });
                }
                continue;
            }
            ':' if alias.is_none() => {
                if !is_alias(&name) {
                    return Err(PathError::BadAlias { element, alias: name });
                }
                alias = Some(std::mem::take(&mut name));
            }
            '>' | ':' | '#' | '!' => return Err(PathError::Reserved { element, found: c }),
            c => name.push(c),
        }
        chars.next();
        if name.chars().count() > MAX_NAME {
            return Err(PathError::NameTooLong { element });
        }
    }
    if name.is_empty() {
        return Err(PathError::EmptyName { element });
    }
    if name.trim() != name || name.chars().any(char::is_control) {
        return Err(PathError::BadName { element, name });
    }
    Ok((alias, name))
}

/// A namespace alias: an ASCII letter, then letters, digits, `_` or `-`.
pub fn is_alias(s: &str) -> bool {
    s.len() <= MAX_ALIAS
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl fmt::Display for BrowsePath {
    /// The canonical text: `/` and `.` where they apply, `<…>` otherwise, reserved
    /// characters escaped; parsing it gives the same path.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.elements {
            match e.reference {
                Reference::SLASH => f.write_str("/")?,
                Reference::DOT => f.write_str(".")?,
                r => {
                    let hash = if r.include_subtypes { "" } else { "#" };
                    let bang = if r.inverse { "!" } else { "" };
                    write!(f, "<{hash}{bang}{}>", r.kind.name())?;
                }
            }
            if let Some(a) = &e.alias {
                write!(f, "{a}:")?;
            }
            for c in e.name.chars() {
                if RESERVED.contains(c) {
                    f.write_str("&")?;
                }
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
