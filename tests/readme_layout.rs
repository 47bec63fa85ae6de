//! The README's layout table lists every module of the gateway crate and every top-level folder,
//! as the tree has them, and names nothing that does not exist.

use std::path::Path;

fn layout_rows() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let section = readme
        .split("\n## Layout\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README has a Layout section")
        .to_owned();
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| {
            let mut cells = l.trim_matches('|').split(" | ");
            let path = cells.next()?.trim().trim_matches('`').to_owned();
            Some((path, cells.next()?.to_owned()))
        })
        .collect()
}

#[test]
fn every_module_and_top_level_folder_is_in_the_layout_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rows = layout_rows();

    // Every row names something that exists.
    for (path, _) in &rows {
        assert!(
            root.join(path).exists(),
            "the layout table names {path}, which does not exist"
        );
    }

    // Every top-level folder has its row (build output, VCS and local data excepted).
    for entry in std::fs::read_dir(root).expect("root") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if !entry.path().is_dir() || matches!(name.as_str(), ".git" | "target" | "data") {
            continue;
        }
        let wanted = format!("{name}/");
        assert!(
            rows.iter().any(|(p, _)| *p == wanted),
            "the layout table has no row for {wanted}"
        );
    }

    // Every module of the gateway crate is named in the `src/` row.
    let src_row = &rows
        .iter()
        .find(|(p, _)| p == "src/")
        .expect("a src/ row")
        .1;
    let mut modules = 0;
    for entry in std::fs::read_dir(root.join("src")).expect("src") {
        let path = entry.expect("entry").path();
        let name = match path.extension() {
            Some(ext) if ext == "rs" => path.file_stem(),
            None if path.is_dir() => path.file_name(),
            _ => None,
        };
        let Some(name) = name.map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        if name == "lib" {
            continue;
        }
        modules += 1;
        assert!(
            src_row.contains(&format!("`{name}`")),
            "the layout table's src/ row does not name the module {name}"
        );
    }
    assert!(modules >= 15, "found {modules} modules");
}
