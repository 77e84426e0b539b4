# METADATA
# title: DataVisa's own Rego lint rules
# description: |
#   The house style (STYLE.md) checked mechanically over the AST that `opa parse` prints,
#   for when Regal is not at hand: METADATA on every package and public rule, packages
#   named after their folders, tests in *_test packages, no unification with `=`, no
#   `import input`, snake_case names. `datavisa policy lint` runs it with the pinned OPA.
#
#   Input: {files: {path relative to the policy root: AST from opa parse --format json
#   --json-include locations}}
#   Output: report = set of {file, row, rule, message}
package datavisa_lint

_test_file(path) if endswith(path, "_test.rego")

_package(ast) := concat(".", [part.value | some i, part in ast.package.path; i > 0])

_dir(path) := concat(".", array.slice(parts, 0, count(parts) - 1)) if parts := split(path, "/")

_row(node) := object.get(node, ["location", "row"], 1)

_documented(annotation) if {
	annotation.title
	annotation.description
}

# METADATA
# title: Lint report
# description: Each finding, as {file, row, rule, message}.
report contains {"file": path, "row": 1, "rule": "package-metadata", "message": msg} if {
	some path, ast in input.files
	not _test_file(path)
	not _package_documented(ast)
	msg := sprintf("package %s has no # METADATA block with a title and a description", [_package(ast)])
}

report contains {"file": path, "row": row, "rule": "rule-metadata", "message": msg} if {
	some path, ast in input.files
	not _test_file(path)
	some name in {rule.head.ref[0].value | some rule in ast.rules}
	not startswith(name, "_")
	not _rule_documented(ast, name)
	row := min({_row(rule) | some rule in ast.rules; rule.head.ref[0].value == name})
	msg := sprintf("public rule %s has no # METADATA block with a title and a description; document it, or start its name with _ if it is internal", [name])
}

report contains {"file": path, "row": _row(ast.package), "rule": "directory-package-mismatch", "message": msg} if {
	some path, ast in input.files
	expected := _dir(path)
	actual := trim_suffix(_package(ast), "_test")
	actual != expected
	msg := sprintf("package %s lives in %s; name it after its folder (%s)", [_package(ast), path, expected])
}

report contains {"file": path, "row": _row(ast.package), "rule": "test-package-name", "message": msg} if {
	some path, ast in input.files
	_test_file(path)
	not endswith(_package(ast), "_test")
	msg := sprintf("tests in %s belong to a package ending in _test, not %s", [path, _package(ast)])
}

report contains {"file": path, "row": _row(rule), "rule": "test-outside-test-package", "message": msg} if {
	some path, ast in input.files
	not _test_file(path)
	some rule in ast.rules
	startswith(rule.head.ref[0].value, "test_")
	msg := sprintf("test %s sits in policy code; move it to a *_test.rego file", [rule.head.ref[0].value])
}

report contains {"file": path, "row": _row(expr), "rule": "use-assignment-operator", "message": msg} if {
	some path, ast in input.files
	some rule in ast.rules
	walk(rule.body, [_, expr])
	expr.terms[0].value[0].value == "eq"
	msg := "unification with = is hard to read; use := to assign or == to compare"
}

report contains {"file": path, "row": _row(imp), "rule": "import-input", "message": msg} if {
	some path, ast in input.files
	some imp in ast.imports
	imp.path.value[0].value == "input"
	msg := "never import input; refer to input where it is used"
}

report contains {"file": path, "row": _row(rule), "rule": "prefer-snake-case", "message": msg} if {
	some path, ast in input.files
	some rule in ast.rules
	name := rule.head.ref[0].value
	not regex.match(`^[a-z_][a-z0-9_]*$`, name)
	msg := sprintf("name %s is not snake_case", [name])
}

_package_documented(ast) if {
	some annotation in ast.annotations
	annotation.scope == "package"
	_documented(annotation)
}

_rule_documented(ast, name) if {
	some rule in ast.rules
	rule.head.ref[0].value == name
	some annotation in rule.annotations
	_documented(annotation)
}
