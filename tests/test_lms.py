"""LMS exports of an exercise batch (Moodle XML, GIFT, QTI): each parses, each answer and tolerance is
key.json's (and `symcnn values`' of the variant's scenario file), hostile names survive escaped, and the
same seed gives the same bytes."""

from __future__ import annotations

import base64
import json
import math
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest
import yaml

from symcnn.cli import main
from symcnn.verify import lookup

HOSTILE = "</text>]]>{x}=~#:<script>&"  # every character an export must escape, in one name
FIXTURES = Path(__file__).parent / "fixtures"


def exercise(out: Path, *args: str) -> int:
    return main(["exercise", *args, "--out", str(out)])


def hostile_scenario(folder: Path) -> Path:
    """zebra-cat with the class, image and filter names (and the title) made of what breaks formats."""
    data = yaml.safe_load(
        subprocess.run(
            [sys.executable, "-c", "import symcnn.scenario.sources as s; print(s.read_source('zebra-cat')[0])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    data.pop("claims", None)
    data["title"] = f"Title {HOSTILE}\n\n::injected::{{#1}}\n"
    data["classes"] = [f"zebra {HOSTILE}", "cat ]]> {1:NUMERICAL:=5}{#1}"]
    for x, name in zip(data["inputs"], ("zebra", "cat")):
        x["name"] = f"{name} <b>{{~=#:}}"
        x["label"] = data["classes"][0] if name == "zebra" else data["classes"][1]
    data["conv"]["filters"][0]["name"] = f"edge {HOSTILE}"
    path = folder / "hostile.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    """Three variants of four-images, seed 5, in every LMS format (and the Markdown sheets)."""
    out = tmp_path_factory.mktemp("lms")
    assert (
        exercise(
            out, "four-images", "--seed", "5", "--count", "3", "--format", "markdown,moodle,gift,qti", "--jobs", "2"
        )
        == 0
    )
    return out


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hostile")
    scenario = hostile_scenario(out)
    assert (
        exercise(
            out / "batch", str(scenario), "--seed", "3", "--count", "2", "--format", "moodle,gift,qti", "--jobs", "1"
        )
        == 0
    )
    return out / "batch"


def key_of(folder: Path) -> dict:
    return json.loads((folder / "key.json").read_text(encoding="utf-8"))


def values_of(folder: Path, number: str) -> dict:
    """`symcnn values` of the variant's own scenario file, run as a user would."""
    scenario = folder / key_of(folder)["variants"][number]["file"]
    result = subprocess.run(
        [sys.executable, "-m", "symcnn", "values", str(scenario)], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


# ----------------------------------------------------------------------------- Moodle XML


def moodle_questions(folder: Path) -> list[tuple[str, ET.Element]]:
    """(category path in force, question element) for every numerical question, in file order."""
    root = ET.parse(folder / "moodle.xml").getroot()
    assert root.tag == "quiz"
    out, category = [], None
    for q in root:
        assert q.tag == "question"
        if q.get("type") == "category":
            category = q.findtext("category/text")
        elif q.get("type") == "numerical":
            out.append((category, q))
        else:
            assert (q.get("type"), category.rsplit("/", 1)[1]) == ("cloze", "sheet")
    return out


# Moodle's qtype_multianswer regexes (question/type/multianswer/questiontype.php: ANSWER_REGEX and the
# numerical alternative), PCRE's alternation look-behind written as three for Python
NUMBER = r"-?(?:(?:[0-9]+[.,]?[0-9]*|[.,][0-9]+)(?:[eE][-+]?[0-9]+)?)"
TYPES = r"NUMERICAL|NM|MULTICHOICE|MC|MULTICHOICE_V|MCV|MULTICHOICE_H|MCH|SHORTANSWER|SA|MW|SHORTANSWER_C|SAC|MWC"
ALTERNATIVE = r"(?:=|%-?[0-9]+(?:[.,][0-9]*)?%)?(?:.+?(?<!\\)(?<!&)(?<!&amp;)(?=[~#}]|$))(?:#(?:.*?(?<!\\)(?=[~}]|$)))?"
CLOZE_ANSWER = re.compile(
    r"\{(?P<norm>[0-9]*):(?P<type>" + TYPES + r"):(?P<alternatives>" + ALTERNATIVE + r"(?:~" + ALTERNATIVE + r")*)\}",
    re.S,
)


def cloze_answers(html: str) -> list[tuple[str, str, str]]:
    """(type, value, tolerance) of each embedded answer, found as Moodle finds them."""
    out = []
    for match in CLOZE_ANSWER.finditer(html):
        assert (match["norm"], match["type"]) == ("1", "NUMERICAL"), match.group(0)
        numeric = re.fullmatch(f"=({NUMBER})(?::({NUMBER}))?", match["alternatives"])
        assert numeric, match.group(0)
        out.append((match["type"], numeric[1], numeric[2]))
    return out


def cloze_questions(folder: Path) -> list[ET.Element]:
    root = ET.parse(folder / "moodle.xml").getroot()
    return root.findall("question[@type='cloze']")


def test_moodle_has_a_category_per_question_and_a_question_per_variant(batch):
    key = key_of(batch)
    questions = moodle_questions(batch)
    ids = list(key["variants"]["1"]["questions"])
    categories = list(dict.fromkeys(c for c, _ in questions))
    assert len(categories) == len(ids) == 7
    for qid, category in zip(ids, categories):
        assert category.startswith(f"$course$/symcnn/four-images-seed5-easy/{qid}-")
        inside = [q for c, q in questions if c == category]
        assert [q.findtext("name/text") for q in inside] == [
            f"four-images-seed5-easy variant {n} {qid}" for n in (1, 2, 3)
        ]
    assert categories[2].endswith("q3-logit") and categories[4].endswith("q5-loss")


def test_moodle_answers_are_the_keys_and_the_scenarios_values(batch):
    key = key_of(batch)
    questions = moodle_questions(batch)
    for number, entry in key["variants"].items():
        values = values_of(batch, number)
        for qid, item in entry["questions"].items():
            (q,) = [
                q
                for c, q in questions
                if c.split("/")[-1].startswith(f"{qid}-")
                and q.findtext("name/text").endswith(f"variant {number} {qid}")
            ]
            (answer,) = q.findall("answer")
            assert answer.get("fraction") == "100"
            assert float(answer.findtext("text")) == item["value"] == lookup(values, item["path"])
            assert float(answer.findtext("tolerance")) == item["tol"]


def test_moodle_has_what_import_numerical_reads(batch):
    """The elements and attributes of question/format/xml/format.php's import_headers/import_numerical,
    laid out as in the fixture written from Moodle's documented numerical example."""
    fixture = ET.parse(FIXTURES / "moodle-numerical.xml").getroot().find("question[@type='numerical']")
    (_, q), *_ = moodle_questions(batch)

    def shape(element: ET.Element, path: str = "") -> set[str]:
        """Every element path and attribute below ``element``: /answer/tolerance, /answer@fraction."""
        paths = {f"{path}@{name}" for name in element.attrib}
        for child in element:
            paths |= {f"{path}/{child.tag}"} | shape(child, f"{path}/{child.tag}")
        return paths

    expected = shape(fixture)
    assert expected <= shape(q), expected - shape(q)
    text = q.find("questiontext")
    assert text.get("format") == "html"
    html = text.findtext("text")
    files = {f.get("name"): f for f in text.findall("file")}
    assert files, "the setup's pictures are files of the question"
    for name, f in files.items():
        assert (f.get("path"), f.get("encoding")) == ("/", "base64")
        svg = base64.b64decode(f.text).decode("utf-8")
        ET.fromstring(svg.split("\n", 1)[1])  # an SVG document
        assert f'src="@@PLUGINFILE@@/{name}"' in html
    assert "\\(" in html and "\\begin{bmatrix}" in html  # maths for MathJax
    assert float(q.findtext("answer/tolerance")) > 0


def test_moodle_xml_uses_cdata_for_html(batch):
    text = (batch / "moodle.xml").read_text(encoding="utf-8")
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<quiz>')
    assert text.count('<questiontext format="html">\n      <text><![CDATA[') == 21 + 3  # and a cloze per variant


def test_hostile_names_survive_moodle_escaped(hostile):
    questions = moodle_questions(hostile)  # parses: nothing broke out of its element or CDATA
    html = questions[0][1].findtext("questiontext/text")
    # the HTML itself is escaped: no element a name brought in, the names' text all there
    assert "<script>" not in html and "<b>" not in html and "</text>" not in html
    body = ET.fromstring(f"<body>{html}</body>")  # a well-formed fragment
    shown = "".join(body.itertext())
    assert f"Classes: zebra {HOSTILE}, cat ]]> {{1:NUMERICAL:=5}}{{#1}}." in shown  # the names' own text, all there
    assert "Image cat <b>{~=#:} (label cat ]]> {1:NUMERICAL:=5}{#1}):" in shown
    assert {e.tag for e in body.iter()} <= {"body", "div", "p", "img", "em", "strong", "table", "tr", "td", "th"}
    assert "\\text{edge }\\lt\\text{/text}\\gt" in shown  # in maths: < and > as symbols, never raw
    key = key_of(hostile)
    for category, q in questions:
        number = q.findtext("name/text").split(" variant ")[1].split()[0]
        qid = category.split("/")[-1].split("-")[0]
        item = key["variants"][number]["questions"][qid]
        assert float(q.findtext("answer/text")) == item["value"]
        assert HOSTILE.replace("<script>&", "") not in category  # category paths are built from slugs only
    for q in cloze_questions(hostile):  # a name such as {1:NUMERICAL:=5} or {#1} forms no answer
        html = q.findtext("questiontext/text")
        assert len(cloze_answers(html)) == 7 and "{#" not in html
        shown = "".join(ET.fromstring(f"<body>{html}</body>").itertext())
        assert "cat ]]> {1:NUMERICAL:=5}{#1}" in shown  # the name, decoded, as a reader sees it


def test_moodle_cloze_holds_each_variants_sheet_with_the_keys_answers(batch):
    key = key_of(batch)
    clozes = cloze_questions(batch)
    assert [q.findtext("name/text") for q in clozes] == [f"four-images-seed5-easy variant {n} sheet" for n in (1, 2, 3)]
    for number, q in zip(("1", "2", "3"), clozes):
        html = q.findtext("questiontext/text")
        found = cloze_answers(html)
        expected = key["variants"][number]["questions"]
        assert len(found) == len(expected) == 7
        for (_, value, tol), item in zip(found, expected.values()):
            assert (float(value), float(tol)) == (item["value"], item["tol"])
        assert "{#" not in html and html.count("{") == 7  # only the answers use braces: the maths' are references
        assert "\\begin&#123;bmatrix&#125;" in html
        assert {f.get("name") for f in q.findall("questiontext/file")} == set(
            re.findall(r"@@PLUGINFILE@@/([^\"]+)", html)
        )


def test_cdata_cannot_be_closed_by_its_content():
    from symcnn.exercises.lms import cdata

    text = "a ]]> b ]]]]> c"
    wrapped = ET.fromstring(f"<t>{cdata(text)}</t>")
    assert wrapped.text == text


def test_same_seed_same_moodle_bytes(batch, tmp_path):
    assert exercise(tmp_path, "four-images", "--seed", "5", "--count", "3", "--format", "moodle", "--jobs", "1") == 0
    assert (tmp_path / "moodle.xml").read_bytes() == (batch / "moodle.xml").read_bytes()


# ----------------------------------------------------------------------------- GIFT

GIFT_ESCAPES = {":": "&&058;", "#": "&&035;", "=": "&&061;", "{": "&&123;", "}": "&&125;", "~": "&&126;", "n": "&&010"}


def read_gift(text: str) -> list[dict]:
    """A small GIFT reader doing what Moodle's qformat_gift::readquestion does with our questions:
    blank lines separate questions, // lines are comments, escapes become placeholders first, then
    $CATEGORY, ::name::, [format], the first { } is the answer; numerical {#value:tolerance}."""
    out, category = [], None
    for block in text.split("\n\n"):
        lines = [" " if line.strip().startswith("//") else line for line in block.split("\n")]
        body = "\n".join(lines).strip()
        if not body:
            continue
        body = body.replace("\\\\", "&&092;")
        for char, placeholder in GIFT_ESCAPES.items():
            body = body.replace("\\" + char, placeholder)
        body = body.replace("&&092;", "\\")

        def post(value: str) -> str:
            for char, placeholder in GIFT_ESCAPES.items():
                value = value.replace(placeholder, "\n" if char == "n" else char)
            return value

        if body.startswith("$CATEGORY:"):
            category = body[10:].strip()
            continue
        assert body.startswith("::"), body[:80]
        name, rest = body[2:].split("::", 1)
        start, finish = rest.index("{"), rest.index("}")
        assert finish > start and rest[finish + 1 :].strip() == "", "one answer, at the end"
        answer = rest[start + 1 : finish].strip()
        question = rest[:start]
        assert question.startswith("[html]")
        assert answer.startswith("#") and answer.count(":") == 1, answer
        value, tol = answer[1:].split(":")
        out.append(
            {"category": category, "name": post(name), "html": post(question[6:]).strip(), "value": value, "tol": tol}
        )
    return out


def test_gift_has_the_same_categories_and_answers_as_the_key(batch):
    key = key_of(batch)
    questions = read_gift((batch / "questions.gift").read_text(encoding="utf-8"))
    assert len(questions) == 21
    moodle = moodle_questions(batch)
    assert [q["category"] for q in questions] == [c for c, _ in moodle]
    assert [q["name"] for q in questions] == [q.findtext("name/text") for _, q in moodle]
    for q in questions:
        number, qid = q["name"].split(" variant ")[1].split()
        item = key["variants"][number]["questions"][qid]
        assert float(q["value"]) == item["value"] and float(q["tol"]) == item["tol"]
    values = {n: values_of(batch, n) for n in key["variants"]}
    for q in questions:
        number, qid = q["name"].split(" variant ")[1].split()
        assert float(q["value"]) == lookup(values[number], key["variants"][number]["questions"][qid]["path"])


def test_gift_text_is_moodles_html_without_pictures(batch):
    (_, first), *_ = moodle_questions(batch)
    (gift, *_) = read_gift((batch / "questions.gift").read_text(encoding="utf-8"))
    assert "<img" not in gift["html"] and "\\begin{bmatrix}" in gift["html"]
    assert " \\\\ " in gift["html"]  # a matrix's row break survived GIFT's backslash rule
    moodle = first.findtext("questiontext/text")
    pictures = re.compile(r"<p><img [^\n]*</p>\n<p><em>[^\n]*</em></p>\n")
    assert len(pictures.findall(moodle)) == 2  # the images, the filters
    assert gift["html"] == " ".join(pictures.sub("", moodle).split("\n")).strip()


def test_hostile_names_survive_gift_escaped(hostile):
    questions = read_gift((hostile / "questions.gift").read_text(encoding="utf-8"))
    key = key_of(hostile)
    assert len(questions) == 14
    for q in questions:
        number, qid = q["name"].split(" variant ")[1].split()
        item = key["variants"][number]["questions"][qid]
        assert float(q["value"]) == item["value"] and float(q["tol"]) == item["tol"]
    body = ET.fromstring(f"<body>{questions[0]['html']}</body>")
    shown = "".join(body.itertext())
    assert f"Classes: zebra {HOSTILE}, cat ]]> {{1:NUMERICAL:=5}}{{#1}}." in shown
    assert "Image cat <b>{~=#:} (label cat ]]> {1:NUMERICAL:=5}{#1}):" in shown


def test_gift_escapes_as_moodles_writer():
    from symcnn.exercises.gift import escape_gift

    assert escape_gift("a\\b #=~{}: c\nd\r") == "a\\\\b \\#\\=\\~\\{\\}\\: c\\nd"


# ----------------------------------------------------------------------------- QTI 1.2 (Canvas)

QTI = "{http://www.imsglobal.org/xsd/ims_qtiasiv1p2}"
CP = "{http://www.imsglobal.org/xsd/imsccv1p1/imscp_v1p1}"


def qti_sections(folder: Path) -> list[ET.Element]:
    with zipfile.ZipFile(folder / "qti.zip") as package:
        assert package.testzip() is None
        manifest = ET.fromstring(package.read("imsmanifest.xml"))
        (resource,) = manifest.iter(f"{CP}resource")
        assert resource.get("type") == "imsqti_xmlv1p2"
        (href,) = [f.get("href") for f in resource.iter(f"{CP}file")]
        assert sorted(package.namelist()) == sorted(["imsmanifest.xml", href])
        root = ET.fromstring(package.read(href))
    assert root.tag == f"{QTI}questestinterop"
    (assessment,) = root.findall(f"{QTI}assessment")
    (outer,) = assessment.findall(f"{QTI}section")
    return outer.findall(f"{QTI}section")


def qti_answer(item: ET.Element) -> tuple[float, float, float]:
    """(varequal, vargte, varlte) of a numerical item, after checking how it asks and scores."""
    fields = {
        f.findtext(f"{QTI}fieldlabel"): f.findtext(f"{QTI}fieldentry") for f in item.iter(f"{QTI}qtimetadatafield")
    }
    assert fields["question_type"] == "numerical_question"
    (fib,) = item.iter(f"{QTI}render_fib")
    assert fib.get("fibtype") == "Decimal"
    (condition,) = item.iter(f"{QTI}respcondition")
    assert condition.findtext(f"{QTI}setvar") == "100"
    (either,) = condition.find(f"{QTI}conditionvar").findall(f"{QTI}or")
    exact = either.find(f"{QTI}varequal")
    low, high = either.find(f"{QTI}and/{QTI}vargte"), either.find(f"{QTI}and/{QTI}varlte")
    assert exact.get("respident") == low.get("respident") == high.get("respident") == "response1"
    return float(exact.text), float(low.text), float(high.text)


def test_qti_has_a_section_drawing_one_variant_per_question(batch):
    key = key_of(batch)
    sections = qti_sections(batch)
    assert len(sections) == 7
    values = {n: values_of(batch, n) for n in ("1", "2", "3")}
    for qid, section in zip(key["variants"]["1"]["questions"], sections):
        assert section.findtext(f"{QTI}selection_ordering/{QTI}selection/{QTI}selection_number") == "1"
        items = section.findall(f"{QTI}item")
        assert [i.get("title") for i in items] == [f"four-images-seed5-easy variant {n} {qid}" for n in (1, 2, 3)]
        for n, item in zip(("1", "2", "3"), items):
            entry = key["variants"][n]["questions"][qid]
            exact, low, high = qti_answer(item)
            assert exact == entry["value"] == lookup(values[n], entry["path"])
            assert math.isclose((high - low) / 2, entry["tol"], rel_tol=1e-9)
            assert math.isclose((high + low) / 2, entry["value"], rel_tol=1e-9, abs_tol=1e-12)
    idents = [e.get("ident") for s in sections for e in [s, *s.findall(f"{QTI}item")]]
    assert len(idents) == len(set(idents)) == 7 + 21


def test_qti_text_is_html_with_inline_pictures(batch):
    item = qti_sections(batch)[0].find(f"{QTI}item")
    mattext = next(item.iter(f"{QTI}mattext"))
    assert mattext.get("texttype") == "text/html"
    body = ET.fromstring(f"<body>{mattext.text}</body>")  # the HTML, unescaped once by the XML parser
    sources = [img.get("src") for img in body.iter("img")]
    assert len(sources) == 6 and all(src.startswith("data:image/svg+xml;base64,") for src in sources)
    for src in sources:
        ET.fromstring(base64.b64decode(src.split(",", 1)[1]).decode("utf-8").split("\n", 1)[1])


def test_hostile_names_survive_qti_escaped(hostile):
    sections = qti_sections(hostile)
    key = key_of(hostile)
    for section in sections:
        for item in section.findall(f"{QTI}item"):
            number, qid = item.get("title").split(" variant ")[1].split()
            exact, _, _ = qti_answer(item)
            assert exact == key["variants"][number]["questions"][qid]["value"]
    mattext = next(sections[0].iter(f"{QTI}mattext")).text
    shown = "".join(ET.fromstring(f"<body>{mattext}</body>").itertext())
    assert f"Classes: zebra {HOSTILE}, cat ]]> {{1:NUMERICAL:=5}}{{#1}}." in shown


def test_same_seed_same_qti_and_gift_bytes(batch, tmp_path):
    assert exercise(tmp_path, "four-images", "--seed", "5", "--count", "3", "--format", "qti,gift", "--jobs", "1") == 0
    for name in ("qti.zip", "questions.gift"):
        assert (tmp_path / name).read_bytes() == (batch / name).read_bytes()


def test_unknown_format_is_one_error_line(tmp_path, capsys):
    assert exercise(tmp_path / "x", "--seed", "1", "--format", "markdown,blackboard") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --format: unknown 'blackboard'") and err.count("\n") == 1
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


def test_the_committed_example_batch_is_fresh(tmp_path):
    """output/exercises/ is what `symcnn examples` writes there now (seed 2026, 5 variants, every format)."""
    from symcnn.exercises.batch import EXAMPLE_BATCH, write_exercises

    write_exercises(out=tmp_path, jobs=2, **EXAMPLE_BATCH)
    committed = Path(__file__).resolve().parents[1] / "output" / "exercises"

    def listing(folder: Path) -> dict[str, bytes]:
        return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    fresh, stored = listing(tmp_path), listing(committed)
    assert sorted(fresh) == sorted(stored), "output/exercises/ is stale: run `symcnn examples --out output`"
    stale = sorted(name for name in fresh if fresh[name] != stored[name])
    assert not stale, f"output/exercises/ is stale ({', '.join(stale[:5])}): run `symcnn examples --out output`"
    assert {"moodle.xml", "questions.gift", "qti.zip", "key.json"} <= set(fresh)


def test_a_stack_scenario_exports_whatever_questions_it_has(tmp_path):
    """A `layers` scenario's variants (their own questions: hidden gradients, dL/dx, ...) export the same way."""
    assert (
        exercise(tmp_path, "two-conv", "--seed", "1", "--count", "1", "--format", "moodle,gift,qti", "--jobs", "1") == 0
    )
    key = key_of(tmp_path)
    expected = key["variants"]["1"]["questions"]
    values = values_of(tmp_path, "1")
    moodle = moodle_questions(tmp_path)
    gift = read_gift((tmp_path / "questions.gift").read_text(encoding="utf-8"))
    sections = qti_sections(tmp_path)
    assert len(moodle) == len(gift) == len(sections) == len(expected)
    for (category, q), g, section, (qid, item) in zip(moodle, gift, sections, expected.items()):
        assert category.split("/")[-1].startswith(f"{qid}-") and g["category"] == category
        assert float(q.findtext("answer/text")) == float(g["value"]) == item["value"] == lookup(values, item["path"])
        assert float(q.findtext("answer/tolerance")) == float(g["tol"]) == item["tol"]
        (qti_item,) = section.findall(f"{QTI}item")
        assert qti_answer(qti_item)[0] == item["value"]
    (cloze,) = cloze_questions(tmp_path)
    answers = cloze_answers(cloze.findtext("questiontext/text"))
    assert [float(v) for _, v, _ in answers] == [item["value"] for item in expected.values()]
