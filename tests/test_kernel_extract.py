"""smmufuzz/kernel/extract.py: definitions found by name in C text, as the compiler would see them (no tree needed)."""

import pytest

from smmufuzz.kernel.extract import ExtractError, Source, blank

TEXT = r'''/* helper(int x) { in a comment } */
#define helper_like(x) { (x); }
struct thing;
static inline int helper(struct thing *t, unsigned long iova);   /* a declaration */

#ifdef CONFIG_A
struct thing {
	unsigned long start, end;
	int (*cb)(struct thing *t);
	union {
		struct { int a; };
		int b;
	};
	char name[8];
};

static inline
int helper(struct thing *t,
	   unsigned long iova)
{
	const char *s = "helper(void) {";
	if (t) {
		list_for_each(helper(t, iova)) { }
	}
	return s[0] == '{';
}
#else
struct thing {};
static inline int helper(struct thing *t, unsigned long iova) { return 0; }
#endif

int caller(void)
{
	return helper(NULL, 0);
}
'''


def test_blank_keeps_offsets_and_hides_comments_strings_and_directives():
    b = blank(TEXT)
    assert len(b) == len(TEXT) and b.count("\n") == TEXT.count("\n")
    assert "in a comment" not in b and "helper(void)" not in b and "helper_like" not in b and "#" not in b


def test_the_configured_definition_is_found_not_a_call_declaration_or_comment():
    d = Source(TEXT, "x.h", {"CONFIG_A"}).function("helper")
    assert d.line == 18 and d.prefix == "static inline int"
    assert d.params == ("struct thing *", "unsigned long")
    assert d.text.startswith("static inline\nint helper(") and d.text.endswith("return s[0] == '{';\n}")
    stub = Source(TEXT, "x.h", set()).function("helper")
    assert stub.text == "static inline int helper(struct thing *t, unsigned long iova) { return 0; }"
    assert Source(TEXT, "x.h", set()).function("caller").params == ("void",)


def test_struct_members_include_function_pointers_and_anonymous_unions():
    assert Source(TEXT, "x.h", {"CONFIG_A"}).struct("thing").members == ("start", "end", "cb", "a", "b", "name")
    assert Source(TEXT, "x.h", set()).struct("thing").members == ()


def test_missing_and_changed_shape_are_one_line_naming_the_function():
    src = Source(TEXT, "include/x.h", {"CONFIG_A"})
    with pytest.raises(ExtractError, match=r"^include/x.h: no definition of nothere\(\) \(for this configuration\)$"):
        src.function("nothere")
    with pytest.raises(ExtractError) as e:
        src.require_function("helper", ("struct thing *", "unsigned long", "size_t"))
    assert str(e.value) == ("include/x.h:18: helper(struct thing *, unsigned long) changed shape: smmufuzz expects "
                            "helper(struct thing *, unsigned long, size_t)")
    with pytest.raises(ExtractError, match=r"^include/x.h:\d+: struct thing changed shape: no member queued$"):
        src.require_struct("thing", ("start", "queued"))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("cond, defined, live", [
    ("#ifndef CONFIG_A", set(), True), ("#ifndef CONFIG_A", {"CONFIG_A"}, False),
    ("#if defined(CONFIG_A)", {"CONFIG_A"}, True), ("#if !defined(CONFIG_A)", {"CONFIG_A"}, False),
    ("#if IS_ENABLED(CONFIG_A)", set(), False), ("#if 0", {"CONFIG_A"}, False),
    ("#if CONFIG_NR > 3", set(), True),        # undecided: counted as taken
])
def test_conditions(cond, defined, live):
    text = f"{cond}\nint f(void) {{ return 1; }}\n#else\nint f(int x) {{ return 2; }}\n#endif\n"
    want = ("void",) if live else ("int",)
    assert Source(text, "c.c", defined).function("f").params == want
