//! The root crate's layering, held against its own imports: every
//! `crate::…`, `super::…` and module-relative path in `src/` is read, traced
//! through `pub use` re-exports to the module that defines the item, and
//! checked against [`LAYERS`]. The domain and the protocol are crates of
//! their own, re-exported at the root: they count as top-level modules, and
//! their manifests are read too. It fails on a top-level module importing
//! one its row does not name, on a top-level module missing from the table,
//! on a crate layer depending on a workspace crate its row does not name,
//! and on an import cycle between the modules of any one folder (siblings,
//! each counted with everything below it).
//!
//! The table is the one in DESIGN.md's "Layers" and the README's layout:
//! domain ← actors/projections ← edge, api ← node ← cli/main; protocol
//! shared by edge and agent; the agent imports neither edge, api nor actors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module of `src/` and the top-level modules it may import.
/// Anything not in a module's row is forbidden to it; the crate root's own
/// items (the `say!` macro) are open to all.
const LAYERS: &[(&str, &[&str])] = &[
    // Leaves: no import of the crate's other modules.
    ("domain", &[]),
    ("progress", &[]),
    ("data_dir", &[]),
    ("pump", &[]),
    ("metric_catalog", &[]),
    ("live", &[]),
    // Frames and settings shared by the edge and the agent.
    ("protocol", &[]),
    // Reads of the log; the client of the REST API.
    ("projections", &["domain"]),
    (
        "inspector",
        &["data_dir", "domain", "live", "metric_catalog"],
    ),
    ("client", &["protocol"]),
    (
        "tlog",
        &["client", "data_dir", "domain", "progress", "metric_catalog"],
    ),
    // Thin shells over the domain.
    (
        "actors",
        &["domain", "projections", "metric_catalog", "inspector"],
    ),
    // What the API and the data plane both use, below both: the refusal of
    // a connection when the process is busy, the rate limiter, the free-disk
    // watch, DNS checks of custom domains and the egress rule's connector.
    ("busy", &[]),
    ("rate_limit", &[]),
    // Certificates from an ACME CA: served by the edge, reported by the API.
    ("acme", &["metric_catalog"]),
    // A witness of other edges' transparency logs: a server of its own.
    ("witness", &["tlog"]),
    ("disk", &[]),
    ("dns", &["actors", "domain"]),
    ("egress", &["dns", "domain", "live"]),
    // The three that never import each other.
    (
        "edge",
        &[
            "acme",
            "actors",
            "busy",
            "data_dir",
            "disk",
            "dns",
            "domain",
            "egress",
            "inspector",
            "live",
            "metric_catalog",
            "progress",
            "projections",
            "protocol",
            "pump",
            "rate_limit",
            "tlog",
        ],
    ),
    (
        "api",
        &[
            "acme",
            "actors",
            "busy",
            "data_dir",
            "disk",
            "dns",
            "domain",
            "egress",
            "inspector",
            "metric_catalog",
            "progress",
            "projections",
            "protocol",
            "rate_limit",
            "tlog",
        ],
    ),
    ("agent", &["protocol", "pump", "progress"]),
    // Offline readers of a data dir.
    (
        "replay",
        &["data_dir", "domain", "progress", "projections", "tlog"],
    ),
    (
        "audit",
        &[
            "actors",
            "data_dir",
            "domain",
            "progress",
            "projections",
            "tlog",
        ],
    ),
    // The composition root of one process.
    (
        "node",
        &[
            "acme",
            "actors",
            "api",
            "busy",
            "data_dir",
            "disk",
            "dns",
            "domain",
            "edge",
            "egress",
            "inspector",
            "live",
            "metric_catalog",
            "progress",
            "projections",
            "protocol",
            "pump",
            "rate_limit",
            "tlog",
        ],
    ),
    // Harnesses that drive whole processes or their parts.
    (
        "simulate",
        &[
            "actors",
            "domain",
            "edge",
            "inspector",
            "live",
            "metric_catalog",
            "node",
            "projections",
            "protocol",
            "pump",
        ],
    ),
    (
        "bench",
        &[
            "actors",
            "agent",
            "api",
            "busy",
            "client",
            "data_dir",
            "disk",
            "dns",
            "domain",
            "edge",
            "egress",
            "inspector",
            "metric_catalog",
            "node",
            "progress",
            "projections",
            "protocol",
            "pump",
            "rate_limit",
            "tlog",
        ],
    ),
    // The command line: parses arguments into settings and runs commands.
    (
        "cli",
        &[
            "acme",
            "actors",
            "agent",
            "api",
            "audit",
            "bench",
            "busy",
            "client",
            "data_dir",
            "disk",
            "dns",
            "domain",
            "edge",
            "egress",
            "inspector",
            "metric_catalog",
            "node",
            "progress",
            "projections",
            "protocol",
            "pump",
            "rate_limit",
            "replay",
            "simulate",
            "tlog",
            "witness",
        ],
    ),
];

/// The layers that are crates of their own, re-exported at the crate root
/// under their layer's name (`pub use beamd_domain as domain;`): the layer,
/// its crate's name in paths, and the workspace crates its manifest may
/// depend on. Cargo holds these layers (a crate cannot import what it does
/// not depend on); this table holds their manifests, and the root crate's
/// imports of them, written either way, are judged by [`LAYERS`] like any
/// module's.
const CRATE_LAYERS: &[(&str, &str, &[&str])] = &[
    (
        "domain",
        "beamd_domain",
        &["beamd-events", "beamd-snapshots"],
    ),
    ("protocol", "beamd_protocol", &["beamd-events"]),
];

/// The layer a path into another crate names, when that crate is one.
fn crate_layer(first: &str) -> Option<&'static str> {
    CRATE_LAYERS
        .iter()
        .find(|(_, name, _)| *name == first)
        .map(|(layer, ..)| *layer)
}

/// A module path below the crate root, e.g. `["edge", "session"]`.
type ModPath = Vec<String>;

/// One import: the importing module (inline `mod` blocks included) and the
/// path as written, made absolute.
struct Import {
    file: PathBuf,
    from: ModPath,
    path: Vec<String>,
}

/// Every module of the crate (files, folders and inline `mod` blocks), with
/// the re-exports each declares (`pub use`, by the name they export).
#[derive(Default)]
struct Crate {
    modules: BTreeSet<ModPath>,
    reexports: BTreeMap<ModPath, BTreeMap<String, Vec<String>>>,
    imports: Vec<Import>,
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a readable directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The module a file is: `src/edge/session.rs` is `edge::session`,
/// `src/edge/mod.rs` is `edge`, `src/lib.rs` the root. A file pulled in by
/// `#[path]` counts as the module that includes it would name it; such files
/// are rare and their imports still belong to their folder.
fn module_of(file: &Path) -> ModPath {
    let rel = file.strip_prefix(src()).expect("a file under src/");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_string());
    }
    parts
}

/// Tokens of Rust source with comments, strings and char literals removed:
/// identifiers (and keywords) and single punctuation, `::` as one token.
fn tokens(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == b'r'
            && (b.get(i + 1) == Some(&b'"')
                || (b.get(i + 1) == Some(&b'#') && matches!(b.get(i + 2), Some(b'"' | b'#'))))
            && (i == 0 || !is_ident(b[i - 1]))
        {
            // r"…", r#"…"#: ends at the quote followed by as many hashes.
            let mut j = i + 1;
            let mut hashes = 0;
            while b[j] == b'#' {
                hashes += 1;
                j += 1;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == b'"'
                    && b[j + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|&&h| h == b'#')
                        .count()
                        == hashes
                {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            i = j;
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
        } else if c == b'\'' {
            // A char literal ('x', '\n', '\'', '\u{..}') or a lifetime ('a).
            if b.get(i + 1) == Some(&b'\\') {
                i += 2;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
                i += 1;
            } else if b.get(i + 2) == Some(&b'\'') {
                i += 3;
            } else {
                // A lifetime or a multi-byte char: skip the quote only.
                let ch_len = text[i + 1..].chars().next().map_or(1, char::len_utf8);
                if b.get(i + 1 + ch_len) == Some(&b'\'') {
                    i += 2 + ch_len;
                } else {
                    i += 1;
                }
            }
        } else if is_ident(c) {
            let start = i;
            while i < b.len() && is_ident(b[i]) {
                i += 1;
            }
            out.push(text[start..i].to_string());
        } else if c == b':' && b.get(i + 1) == Some(&b':') {
            out.push("::".into());
            i += 2;
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else {
            out.push((c as char).to_string());
            i += 1;
        }
    }
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The paths a use tree names, each with the name it binds (`None` for a
/// glob). `tokens` starts after `use` and ends before `;`.
fn flatten_use(tokens: &[String]) -> Vec<(Vec<String>, Option<String>)> {
    fn tree(
        t: &[String],
        i: &mut usize,
        prefix: &mut Vec<String>,
        out: &mut Vec<(Vec<String>, Option<String>)>,
    ) {
        let depth = prefix.len();
        loop {
            match t.get(*i).map(String::as_str) {
                Some("{") => {
                    *i += 1;
                    loop {
                        if t.get(*i).map(String::as_str) == Some("}") {
                            *i += 1;
                            break;
                        }
                        tree(t, i, prefix, out);
                        if t.get(*i).map(String::as_str) == Some(",") {
                            *i += 1;
                        }
                    }
                    break;
                }
                Some("*") => {
                    *i += 1;
                    out.push((prefix.clone(), None));
                    break;
                }
                Some("::") => *i += 1,
                Some(name) if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                    prefix.push(name.to_string());
                    *i += 1;
                    if t.get(*i).map(String::as_str) == Some("as") {
                        let alias = t.get(*i + 1).cloned();
                        *i += 2;
                        out.push((prefix.clone(), alias));
                        break;
                    }
                    if t.get(*i).map(String::as_str) != Some("::") {
                        let mut path = prefix.clone();
                        let name = path.last().cloned();
                        if name.as_deref() == Some("self") {
                            path.pop();
                            out.push((path.clone(), path.last().cloned()));
                        } else {
                            out.push((path, name));
                        }
                        break;
                    }
                }
                _ => break,
            }
        }
        prefix.truncate(depth);
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let before = i;
        tree(tokens, &mut i, &mut Vec::new(), &mut out);
        if i == before {
            i += 1;
        }
    }
    out
}

impl Crate {
    fn read() -> Crate {
        let mut files = Vec::new();
        rust_files(&src(), &mut files);
        let mut krate = Crate::default();
        for (layer, ..) in CRATE_LAYERS {
            krate.modules.insert(vec![layer.to_string()]);
        }
        for file in &files {
            let module = module_of(file);
            if module.first().map(String::as_str) == Some("main")
                || file.ends_with("main.rs") && module.is_empty()
            {
                // The binary is its own crate; it reaches the library by `beamd::`.
                continue;
            }
            for m in 0..=module.len() {
                krate.modules.insert(module[..m].to_vec());
            }
            let text = std::fs::read_to_string(file).expect("a readable source file");
            krate.scan(file, module, &tokens(&text));
        }
        krate
    }

    /// Records the file's inline modules, its re-exports and every path it
    /// names that starts at `crate`, `super` or `self`, or at a child module.
    fn scan(&mut self, file: &Path, module: ModPath, t: &[String]) {
        // The module each open brace belongs to: an inline `mod x {` opens x.
        let mut stack: Vec<(ModPath, usize)> = vec![(module.clone(), 0)];
        let mut depth = 0usize;
        let mut i = 0;
        while i < t.len() {
            let here = stack.last().expect("the file's module").0.clone();
            match t[i].as_str() {
                "{" => depth += 1,
                "}" => {
                    if stack.len() > 1 && stack.last().expect("open").1 == depth {
                        stack.pop();
                    }
                    depth = depth.saturating_sub(1);
                }
                "mod" if t.get(i + 2).map(String::as_str) == Some("{") => {
                    let mut inner = here.clone();
                    inner.push(t[i + 1].clone());
                    self.modules.insert(inner.clone());
                    depth += 1;
                    stack.push((inner, depth));
                    i += 3;
                    continue;
                }
                "use" => {
                    let end = (i..t.len()).find(|&j| t[j] == ";").unwrap_or(t.len());
                    let public = i > 0 && (t[i - 1] == "pub" || t[i - 1] == ")");
                    for (path, name) in flatten_use(&t[i + 1..end]) {
                        let Some(abs) = absolute(&here, &path, &self.modules) else {
                            continue;
                        };
                        if public {
                            if let Some(name) = name {
                                self.reexports
                                    .entry(here.clone())
                                    .or_default()
                                    .insert(name, abs.clone());
                            }
                        }
                        self.imports.push(Import {
                            file: file.to_path_buf(),
                            from: here.clone(),
                            path: abs,
                        });
                    }
                    i = end;
                    continue;
                }
                "crate" | "super" if t.get(i + 1).map(String::as_str) == Some("::") => {
                    let prev = i.checked_sub(1).map(|p| t[p].as_str());
                    if prev != Some("::") && prev != Some("$") {
                        let mut path = vec![t[i].clone()];
                        let mut j = i + 1;
                        while t.get(j).map(String::as_str) == Some("::")
                            && t.get(j + 1).is_some_and(|s| {
                                s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                            })
                        {
                            path.push(t[j + 1].clone());
                            j += 2;
                        }
                        if let Some(abs) = absolute(&here, &path, &self.modules) {
                            self.imports.push(Import {
                                file: file.to_path_buf(),
                                from: here.clone(),
                                path: abs,
                            });
                        }
                        i = j;
                        continue;
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }

    /// The module that defines what `path` names: the longest prefix that is
    /// a module, then through that module's re-exports (a few hops at most).
    fn defining_module(&self, path: &[String]) -> ModPath {
        let mut path = path.to_vec();
        for _ in 0..8 {
            let mut m = path.len();
            while m > 0 && !self.modules.contains(&path[..m]) {
                m -= 1;
            }
            let module = path[..m].to_vec();
            let Some(name) = path.get(m) else {
                return module;
            };
            match self.reexports.get(&module).and_then(|r| r.get(name)) {
                Some(target) if target != &path => {
                    let mut next = target.clone();
                    next.extend(path[m + 1..].iter().cloned());
                    path = next;
                }
                _ => return module,
            }
        }
        path
    }
}

/// `path` made absolute from module `here`; `None` for a path into another
/// crate or the prelude. Relative paths (2018 edition) may start at a child
/// module of `here`.
fn absolute(here: &ModPath, path: &[String], modules: &BTreeSet<ModPath>) -> Option<Vec<String>> {
    let first = path.first()?;
    let mut base: Vec<String> = match first.as_str() {
        "crate" => Vec::new(),
        "self" => here.clone(),
        "super" => {
            let mut b = here.clone();
            let mut rest = path;
            while rest.first().map(String::as_str) == Some("super") {
                b.pop();
                rest = &rest[1..];
            }
            b.extend(rest.iter().cloned());
            return Some(b);
        }
        other if crate_layer(other).is_some() => {
            let mut b = vec![crate_layer(other)?.to_string()];
            b.extend(path[1..].iter().cloned());
            return Some(b);
        }
        _ => {
            let mut child = here.clone();
            child.push(first.clone());
            if modules.contains(&child) {
                here.clone()
            } else {
                return None;
            }
        }
    };
    let skip = usize::from(matches!(first.as_str(), "crate" | "self"));
    base.extend(path[skip..].iter().cloned());
    Some(base)
}

/// Every import that crosses from one top-level module to another, as
/// (importer, imported) → the files and paths that do it.
fn top_level_edges(krate: &Crate) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut edges: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for import in &krate.imports {
        let target = krate.defining_module(&import.path);
        let (Some(from), Some(to)) = (import.from.first(), target.first()) else {
            continue;
        };
        if from != to {
            let rel = import.file.strip_prefix(src()).unwrap_or(&import.file);
            edges
                .entry((from.clone(), to.clone()))
                .or_default()
                .insert(format!(
                    "{} uses crate::{}",
                    rel.display(),
                    import.path.join("::")
                ));
        }
    }
    edges
}

/// For every folder, the imports between its children (each counted with
/// everything below it): parent → (child → children it imports).
fn sibling_edges(krate: &Crate) -> BTreeMap<ModPath, BTreeMap<String, BTreeSet<String>>> {
    let mut by_parent: BTreeMap<ModPath, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for import in &krate.imports {
        let target = krate.defining_module(&import.path);
        let common = import
            .from
            .iter()
            .zip(&target)
            .take_while(|(a, b)| a == b)
            .count();
        if let (Some(a), Some(b)) = (import.from.get(common), target.get(common)) {
            by_parent
                .entry(import.from[..common].to_vec())
                .or_default()
                .entry(a.clone())
                .or_default()
                .insert(b.clone());
        }
    }
    by_parent
}

/// The strongly connected components of more than one node (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.found
}

#[test]
fn every_top_level_module_imports_only_what_its_layer_allows() {
    let krate = Crate::read();
    let table: BTreeMap<&str, BTreeSet<&str>> = LAYERS
        .iter()
        .map(|(m, allowed)| (*m, allowed.iter().copied().collect()))
        .collect();
    let mut faults = Vec::new();
    for top in krate.modules.iter().filter(|m| m.len() == 1) {
        if !table.contains_key(top[0].as_str()) {
            faults.push(format!(
                "src/{}: a top-level module that LAYERS does not place",
                top[0]
            ));
        }
    }
    for ((from, to), uses) in top_level_edges(&krate) {
        let allowed = table
            .get(from.as_str())
            .is_some_and(|row| row.contains(to.as_str()));
        // `crate::say!` and the crate root's other items belong to no layer.
        if !allowed && krate.modules.contains(&vec![to.clone()]) {
            faults.push(format!("{from} may not import {to}:\n    {}", {
                let v: Vec<_> = uses.into_iter().collect();
                v.join("\n    ")
            }));
        }
    }
    assert!(faults.is_empty(), "layering broken:\n{}", faults.join("\n"));
}

#[test]
fn the_layers_in_crates_of_their_own_depend_only_on_what_their_row_allows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut faults = Vec::new();
    for (layer, _, allowed) in CRATE_LAYERS {
        let manifest = root.join(layer).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest)
            .unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
        let mut section = "";
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line;
                continue;
            }
            let name = line.split(['=', '.', ' ']).next().unwrap_or("");
            let depends = matches!(section, "[dependencies]" | "[build-dependencies]");
            if depends && name.starts_with("beamd") && !allowed.contains(&name) {
                faults.push(format!("{layer}/Cargo.toml depends on {name}"));
            }
        }
    }
    assert!(faults.is_empty(), "layering broken:\n{}", faults.join("\n"));
}

#[test]
fn no_folder_has_an_import_cycle_between_its_modules() {
    let krate = Crate::read();
    let mut faults = Vec::new();
    for (parent, graph) in sibling_edges(&krate) {
        for cycle in cycles(&graph) {
            let folder = if parent.is_empty() {
                "src".to_string()
            } else {
                format!("src/{}", parent.join("/"))
            };
            faults.push(format!("{folder}: {}", cycle.join(" ↔ ")));
        }
    }
    assert!(faults.is_empty(), "import cycles:\n{}", faults.join("\n"));
}

#[test]
fn the_reader_sees_the_imports_it_must_judge() {
    // The checks above are only as good as the reader: it must find a plain
    // use, a grouped use, a re-export and a super path, as written here.
    let t = tokens(
        "use crate::a::{b::C, d as e, f::{self, *}};\n\
         pub use self::g::H; // crate::x::Y in a comment\n\
         let s = \"crate::z::Q\"; super::k::L::new();",
    );
    let here: ModPath = vec!["m".into()];
    let mut modules = BTreeSet::new();
    modules.insert(vec!["m".to_string(), "g".to_string()]);
    let start = t.iter().position(|x| x == "use").expect("a use") + 1;
    let end = t.iter().position(|x| x == ";").expect("a semicolon");
    let paths: Vec<_> = flatten_use(&t[start..end])
        .into_iter()
        .map(|(p, n)| {
            (
                absolute(&here, &p, &modules).expect("absolute").join("::"),
                n,
            )
        })
        .collect();
    assert_eq!(
        paths,
        vec![
            ("a::b::C".to_string(), Some("C".to_string())),
            ("a::d".to_string(), Some("e".to_string())),
            ("a::f".to_string(), Some("f".to_string())),
            ("a::f".to_string(), None),
        ]
    );
    assert!(!t.iter().any(|x| x == "x" || x == "z"), "{t:?}");
    assert!(t.windows(3).any(|w| w == ["super", "::", "k"]));
    let pub_use = t.iter().rposition(|x| x == "use").expect("pub use");
    let end = pub_use + t[pub_use..].iter().position(|x| x == ";").expect(";");
    let reexport = flatten_use(&t[pub_use + 1..end]);
    assert_eq!(
        absolute(&here, &reexport[0].0, &modules).expect("absolute"),
        vec!["m", "g", "H"]
    );
}
