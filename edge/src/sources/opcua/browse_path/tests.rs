use super::*;

fn parse(text: &str) -> BrowsePath {
    BrowsePath::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn refused(text: &str) -> PathError {
    BrowsePath::parse(text).err().unwrap_or_else(|| panic!("{text:?} accepted"))
}

#[test]
fn parses_euromap_paths_with_aliases_references_and_escapes() {
    let p = parse("/imm:Jobs/gen:ActiveJobValues.gen:JobCycleCounter");
    let names: Vec<(Option<&str>, &str)> =
        p.elements.iter().map(|e| (e.alias.as_deref(), e.name.as_str())).collect();
    assert_eq!(
        names,
        [(Some("imm"), "Jobs"), (Some("gen"), "ActiveJobValues"), (Some("gen"), "JobCycleCounter")]
    );
    assert_eq!(p.elements[0].reference, Reference::SLASH);
    assert_eq!(p.elements[2].reference, Reference::DOT);
    assert_eq!(p.aliases().collect::<Vec<_>>(), ["imm", "gen", "gen"]);

    let p = parse("<#!HasComponent>a:Parent/Time");
    let r = p.elements[0].reference;
    assert_eq!((r.kind, r.include_subtypes, r.inverse), (RefType::HasComponent, false, true));
    assert_eq!((p.elements[1].alias.as_deref(), p.elements[1].name.as_str()), (None, "Time"));
    let p = parse("<!Organizes>Objects<HasProperty>x:Name");
    assert_eq!(p.elements[1].reference.kind, RefType::HasProperty);

    let p = parse("/v:Sorter&.Shot/v:A&/B&:C&&D&<E&>&#&!");
    assert_eq!(p.elements[0].name, "Sorter.Shot");
    assert_eq!(p.elements[1].name, "A/B:C&D<E>#!");
    assert_eq!(parse(" /v:Name with spaces ").elements[0].name, "Name with spaces");
}

#[test]
fn display_gives_text_that_parses_to_the_same_path() {
    for text in [
        "/imm:Jobs/gen:ActiveJobValues/gen:MachineCycleCounter",
        ".a:B<#HasChild>c:D<!HasProperty>E/v:x&.y&:z&>",
        "<#!HasAddIn>q-1:Name_2",
        "/v:Sorter&.Shot/Time",
    ] {
        let p = parse(text);
        let again = parse(&p.to_string());
        assert_eq!(again, p, "{text} → {p}");
    }
    assert_eq!(parse("/v:Sorter&.Shot").to_string(), "/v:Sorter&.Shot");
}

#[test]
fn malformed_paths_are_refused_saying_why() {
    assert_eq!(refused(""), PathError::Empty);
    assert_eq!(refused("   "), PathError::Empty);
    assert!(matches!(refused("imm:Jobs"), PathError::NoReference { .. }));
    for (text, element) in [("//a:B", 1), ("/a:B/", 2), ("/imm:", 1), ("/imm:Jobs//gen:X", 2), (".", 1)] {
        assert_eq!(refused(text), PathError::EmptyName { element }, "{text}");
    }
    assert_eq!(refused("/a:b:c"), PathError::Reserved { element: 1, found: ':' });
    assert_eq!(refused("/a:B>C"), PathError::Reserved { element: 1, found: '>' });
    assert_eq!(refused("/a:B#"), PathError::Reserved { element: 1, found: '#' });
    assert_eq!(refused("/a:B/c:D!"), PathError::Reserved { element: 2, found: '!' });
    assert_eq!(refused("/a:B&x"), PathError::BadEscape { element: 1 });
    assert_eq!(refused("/a:B&"), PathError::BadEscape { element: 1 });
    assert!(
        matches!(refused("/1:Jobs"), PathError::BadAlias { element: 1, .. }),
        "raw indexes are not aliases"
    );
    assert!(matches!(refused("/a b:Jobs"), PathError::BadAlias { .. }));
    assert!(matches!(refused("/:Jobs"), PathError::BadAlias { .. }));
    assert_eq!(refused("/a:B<HasComponent"), PathError::Unclosed { element: 2 });
    assert_eq!(refused("<HasComponent<x>a"), PathError::Unclosed { element: 1 });
    let e = refused("/a:B<HasSubtype>C");
    assert!(
        matches!(&e, PathError::UnknownReferenceType { element: 2, name } if name == "HasSubtype"),
        "{e}"
    );
    assert!(e.to_string().contains("HasComponent"), "lists the known types: {e}");
    assert!(matches!(refused("<ns1:MyRef>a"), PathError::UnknownReferenceType { .. }));
    assert!(matches!(refused("<##HasChild>a"), PathError::UnknownReferenceType { .. }));
    assert!(matches!(refused("/a: Jobs"), PathError::BadName { element: 1, .. }));
    assert!(matches!(refused("/a:Jobs /b:X"), PathError::BadName { element: 1, .. }));
    assert!(matches!(refused("/a:Jo\u{7}bs"), PathError::BadName { .. }));
}

#[test]
fn hostile_paths_are_bounded() {
    let deep = "/a:B".repeat(MAX_ELEMENTS);
    assert_eq!(parse(&deep).elements.len(), MAX_ELEMENTS);
    assert_eq!(refused(&format!("{deep}/a:B")), PathError::TooManyElements);
    let huge = format!("/a:{}", "x".repeat(10 * MAX_TEXT));
    assert_eq!(refused(&huge), PathError::TooLong { len: huge.len() });
    let long_name = format!("/{}", "x".repeat(MAX_NAME + 1));
    assert_eq!(refused(&long_name), PathError::NameTooLong { element: 1 });
    assert_eq!(parse(&format!("/{}", "x".repeat(MAX_NAME))).elements[0].name.len(), MAX_NAME);
    let escaped = format!("/{}", "&/".repeat(MAX_NAME + 1));
    assert_eq!(refused(&escaped), PathError::NameTooLong { element: 1 }, "escapes count toward the limit");
    let slashes = "/".repeat(MAX_TEXT);
    assert_eq!(refused(&slashes), PathError::EmptyName { element: 1 });
    let long_alias = format!("/{}:X", "a".repeat(MAX_ALIAS + 1));
    assert!(matches!(refused(&long_alias), PathError::BadAlias { .. }));
    let long_ref = format!("<{}>x", "H".repeat(200));
    assert_eq!(refused(&long_ref), PathError::Unclosed { element: 1 });
    // Multi-byte names count characters, and the byte bound holds.
    let wide = format!("/{}", "é".repeat(MAX_NAME));
    assert_eq!(parse(&wide).elements[0].name.chars().count(), MAX_NAME);
}

#[test]
fn relative_path_maps_aliases_to_indexes() {
    let p = parse("/imm:Jobs.gen:ActiveJobValues<#HasProperty>Time");
    let index = |a: &str| match a {
        "imm" => Ok(4),
        "gen" => Ok(3),
        _ => Err(PathError::UnknownAlias { alias: a.into() }),
    };
    let rp = p.to_relative_path(index).unwrap_or_else(|e| panic!("{e}"));
    let els = rp.elements.unwrap_or_default();
    assert_eq!(els.len(), 3);
    assert_eq!(els[0].target_name, QualifiedName::new(4, "Jobs"));
    assert_eq!(els[0].reference_type_id, NodeId::from(ReferenceTypeId::HierarchicalReferences));
    assert!(els[0].include_subtypes && !els[0].is_inverse);
    assert_eq!(els[1].reference_type_id, NodeId::from(ReferenceTypeId::Aggregates));
    assert_eq!(els[2].target_name, QualifiedName::new(0, "Time"), "no alias: namespace 0");
    assert!(!els[2].include_subtypes);
    let e = parse("/zz:X").to_relative_path(index).err();
    assert_eq!(e, Some(PathError::UnknownAlias { alias: "zz".into() }));
}

#[test]
fn node_specs_tell_paths_from_node_ids() {
    use crate::sources::opcua::node::{NodeSpec, NodeSpecError};
    assert!(matches!(NodeSpec::parse("ns=2;s=Machine/Counter"), Ok(NodeSpec::Id(_))));
    assert!(matches!(NodeSpec::parse("nsu=urn:x;s=/a"), Ok(NodeSpec::Id(_))));
    assert!(matches!(NodeSpec::parse("/imm:Jobs"), Ok(NodeSpec::Path(_))));
    assert!(matches!(NodeSpec::parse("  .a:B"), Ok(NodeSpec::Path(_))));
    assert!(matches!(NodeSpec::parse("/"), Err(NodeSpecError::Path(PathError::EmptyName { .. }))));
    assert!(matches!(NodeSpec::parse("Jobs/Active"), Err(NodeSpecError::Id(_))));
}
