"""(gold, final answer) pairs in the shapes real data sets and real teachers produce.

Golds as MATH / NuminaMath / OpenR1-Math store them (bare LaTeX), as GSM8K does (a worked solution
ending in `#### N`), in `$...$` and in `\\boxed{}`; answers as reasoning teachers write the text
after `</think>` (a box inside prose, display math, several boxes, no box at all), right and wrong.
Written for the differential test against plain math-verify (`test_math_differential.py`); the
filter benchmark's corpus draws its LaTeX golds from here too.
"""

from __future__ import annotations

from itertools import product

# category -> (golds, answers that should match at least one gold, answers that should not)
CATEGORIES: dict[str, tuple[list[str], list[str], list[str]]] = {
    "integer": (
        ["18", "72", "-7", "0", "1,000", "1000", "123456", "1,234,567"],
        [
            "18",
            "18.0",
            "\\$18",
            "18 \\text{ dollars}",
            "18\\text{ cm}",
            "\\text{18}",
            "1{,}000",
            "1000",
            "1,234,567",
            "1\\,234\\,567",
            "72",
            "-7",
            "0",
            "-0",
            "+18",
            "18.00",
        ],
        ["17", "-18", "180", "7", "1", "999", "1234567.5", "\\text{eighteen}"],
    ),
    "decimal": (
        ["0.5", "3.75", "2.50", "-1.25", "0.125", "3.14"],
        [
            "\\frac{1}{2}",
            "0.50",
            ".5",
            "\\frac{15}{4}",
            "3.750",
            "2.5",
            "-\\frac{5}{4}",
            "\\frac{1}{8}",
            "3.14",
            "\\pi",
        ],
        ["0.6", "3.7", "2.05", "1.25", "0.12", "3.1416"],
    ),
    "fraction": (
        [
            "\\frac{3}{4}",
            "\\dfrac{207}{64}",
            "\\tfrac{1}{3}",
            "\\frac34",
            "3/4",
            "-\\frac{2}{5}",
            "\\frac{-2}{5}",
            "\\dfrac{1}{2}",
        ],
        [
            "\\frac{3}{4}",
            "0.75",
            "\\dfrac{3}{4}",
            "3/4",
            "\\frac{6}{8}",
            "\\frac{207}{64}",
            "3.234375",
            "\\frac{1}{3}",
            "0.333333",
            "-0.4",
            "-\\dfrac{2}{5}",
            "\\frac{1}{2}",
            "1/2",
        ],
        ["\\frac{4}{3}", "0.7", "\\frac{207}{46}", "0.333", "0.4", "\\frac{2}{5}", "2"],
    ),
    "mixed_number": (
        ["2\\frac{1}{2}", "3 \\frac{3}{4}", "\\frac{5}{2}"],
        ["\\frac{5}{2}", "2.5", "2\\frac{1}{2}", "\\frac{15}{4}", "3.75"],
        ["\\frac{1}{2}", "2", "3.5"],
    ),
    "percent": (
        ["25\\%", "25%", "12.5\\%", "40"],
        ["25\\%", "25", "0.25", "25%", "12.5\\%", "\\frac{1}{8}", "40\\%", "40"],
        ["2.5\\%", "20\\%", "0.4", "12\\%"],
    ),
    "surd": (
        ["2\\sqrt{3}", "\\frac{3+2\\sqrt{3}}{3}", "\\sqrt{2}/2", "3\\sqrt{2}", "\\sqrt{5}-1"],
        [
            "\\sqrt{12}",
            "2\\sqrt3",
            "1+\\frac{2\\sqrt{3}}{3}",
            "\\frac{\\sqrt{2}}{2}",
            "\\frac{1}{\\sqrt{2}}",
            "\\sqrt{18}",
            "-1+\\sqrt{5}",
        ],
        ["\\sqrt{3}", "2\\sqrt{2}", "\\frac{\\sqrt{3}}{2}", "\\sqrt{5}+1", "3.46"],
    ),
    "complex": (
        ["3+4i", "-2i", "1-i", "\\frac{1}{2}+\\frac{\\sqrt{3}}{2}i"],
        ["4i+3", "3 + 4i", "-2i", "1 - i", "-i+1", "\\frac{1+\\sqrt{3}i}{2}"],
        ["3-4i", "2i", "1+i", "4+3i"],
    ),
    "interval": (
        [
            "(-\\infty,1)\\cup(1,\\infty)",
            "[2,5)",
            "(\\frac{2}{3},1)\\cup(7,\\infty)",
            "(-\\infty, 0]",
            "[-1, 1]",
        ],
        [
            "(-\\infty,1)\\cup(1,\\infty)",
            "(-\\infty, 1) \\cup (1, \\infty)",
            "[2, 5)",
            "(\\frac23,1)\\cup(7,\\infty)",
            "\\left(\\frac{2}{3}, 1\\right) \\cup \\left(7, \\infty\\right)",
            "(-\\infty,0]",
            "[-1,1]",
        ],
        ["[2,5]", "(2,5)", "(-\\infty,1]", "(\\frac{2}{3},1)", "(-1,1)", "(-\\infty,0)"],
    ),
    "tuple": (
        ["(6,1)", "(2, -3)", "(\\frac{1}{2}, 3)", "(1,2,3)"],
        ["(6, 1)", "(6,1)", "(2,-3)", "\\left(\\frac{1}{2},3\\right)", "(0.5, 3)", "(1, 2, 3)"],
        ["(1,6)", "(2,3)", "(-3,2)", "(3,2,1)", "6"],
    ),
    "set": (
        ["\\{1, 2, 3\\}", "1, 2, 3", "2, -2", "\\{-1, 4\\}"],
        ["\\{3,2,1\\}", "1,2,3", "\\{1, 2, 3\\}", "-2, 2", "2, -2", "\\{4, -1\\}", "-1, 4"],
        ["\\{1, 2\\}", "1, 2", "2", "\\{1, 4\\}"],
    ),
    "equation": (
        ["3", "45", "2", "y = 2x + 1", "x=5", "k=45", "x^2+y^2=25"],
        ["x = 3", "k = 45", "n = 2", "y=1+2x", "x = 5", "5", "45", "y^2 + x^2 = 25"],
        ["x = 4", "k = 44", "y = 2x - 1", "x = -5", "x^2+y^2=5"],
    ),
    "polynomial": (
        ["x^2-2x+2", "(x-1)(x+2)", "3x^3 - x", "a^2+2ab+b^2"],
        ["x^2 - 2x + 2", "(x-1)^2+1", "x^2+x-2", "3x^3-x", "x(3x^2-1)", "(a+b)^2"],
        ["x^2+2x+2", "(x+1)(x-2)", "3x^3+x", "a^2+b^2"],
    ),
    "trig": (
        ["\\sin^2t", "\\frac{\\pi}{3}", "60^\\circ", "\\cos x", "2\\pi"],
        [
            "\\sin^2 t",
            "\\sin^{2}t",
            "\\frac{\\pi}{3}",
            "\\pi/3",
            "60",
            "60^{\\circ}",
            "\\cos(x)",
            "2\\pi",
            "6.283185",
        ],
        ["\\cos^2t", "\\frac{\\pi}{6}", "30^\\circ", "\\sin x", "\\pi"],
    ),
    "matrix": (
        ["\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "\\begin{pmatrix} -1 \\\\ 5 \\end{pmatrix}"],
        [
            "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}",
            "\\begin{bmatrix} 1 & 2 \\\\ 3 & 4 \\end{bmatrix}",
            "\\begin{pmatrix} -1 \\\\ 5 \\end{pmatrix}",
        ],
        ["\\begin{pmatrix} 1 & 3 \\\\ 2 & 4 \\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ -5 \\end{pmatrix}"],
    ),
    "text": (
        ["\\text{Monday}", "Monday", "\\text{yes}", "\\text{Evelyn}", "\\text{east}"],
        [
            "\\text{Monday}",
            "Monday",
            "\\text{yes}",
            "yes",
            "\\text{Evelyn}",
            "\\textbf{Monday}",
            "\\text{East}",
        ],
        ["\\text{Tuesday}", "Tuesday", "\\text{no}", "\\text{Amy}", "\\text{west}"],
    ),
    "choice": (
        ["B", "(C)", "\\text{(A)}", "\\textbf{(D)}", "E"],
        ["B", "\\text{B}", "(B)", "C", "\\text{(C)}", "A", "(A)", "\\textbf{(D)}", "D", "E"],
        ["A", "D", "(E)", "\\text{(B)}"],
    ),
    "scientific": (
        ["6.02 \\times 10^{23}", "3 \\times 10^8", "1.5\\times10^{-3}"],
        ["6.02\\times10^{23}", "602000000000000000000000", "3\\cdot 10^8", "300000000", "0.0015"],
        ["6.02 \\times 10^{22}", "3 \\times 10^9", "0.015"],
    ),
    "units": (
        ["18", "12\\text{ cm}", "5 \\text{ meters}", "90^\\circ"],
        [
            "18 \\text{ cm}",
            "18\\,\\text{cm}",
            "18 \\mathrm{cm}",
            "12",
            "12 \\text{cm}",
            "5",
            "5\\text{ m}",
            "90",
            "90^{\\circ}",
            "90 \\text{ degrees}",
        ],
        ["17 \\text{ cm}", "13", "6 \\text{ meters}", "45^\\circ"],
    ),
}

# Golds as stored with their delimiters, GSM8K's worked solutions among them.
WRAPPED_GOLDS: list[tuple[str, list[str], list[str]]] = [
    ("$\\frac{1}{2}$", ["\\frac{1}{2}", "0.5", "\\dfrac12"], ["\\frac{1}{3}"]),
    ("$18$", ["18", "18.0"], ["81"]),
    ("\\boxed{5}", ["5", "5.0"], ["6"]),
    ("The answer is $\\boxed{\\frac{1}{2}}$.", ["\\frac{1}{2}", "0.5"], ["2"]),
    ("$(6,1)$", ["(6,1)"], ["(1,6)"]),
    ("$x^2-2x+2$", ["x^2-2x+2"], ["x^2+2"]),
    (
        "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips "
        "altogether in April and May.\n#### 72",
        ["72", "72.00", "\\$72", "72 \\text{ clips}"],
        ["71", "24"],
    ),
    (
        "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = "
        "$<<0.2*50=10>>10.\n#### 10",
        ["10", "\\$10", "10.00"],
        ["12", "0.2"],
    ),
    ("In total 3,000 + 500 = 3,500 dollars.\n#### 3500", ["3500", "3,500", "\\$3,500"], ["3000"]),
]

# How teachers put an answer A after </think>: boxed in prose, display math, inline math.
BOXED_TEMPLATES = [
    "So the answer is $\\boxed{{{a}}}$.",
    "Therefore, the final answer is \\boxed{{{a}}}.",
    "**Final Answer**\n\\[\n\\boxed{{{a}}}\n\\]",
    "\\boxed{{{a}}}",
]
# Replies without a box: `fail: no boxed answer` under the boxed policy, read by the lenient one.
PLAIN_TEMPLATES = [
    "The answer is {a}.",
    "Final answer: ${a}$",
    "#### {a}",
    "So there are {a} in total.",
]
# Several boxes in one final answer (math-verify reads them all).
MULTI_BOX = [
    ("(2,2),(6,2)", "\\boxed{(2, 2)} \\quad \\text{and} \\quad \\boxed{(6, 2)}", "pass"),
    ("(2,2),(6,2)", "\\boxed{(2, 2)} \\quad \\text{and} \\quad \\boxed{(6, 3)}", "fail"),
    ("\\{1,2,3\\}", "\\boxed{1},\\boxed{2},\\boxed{3}", "pass"),
    ("1, 2, 3", "\\boxed{1},\\boxed{2},\\boxed{3}", "pass"),
    ("1, 2, 3", "\\boxed{1},\\boxed{2}", "fail"),
    ("45", "Hence \\boxed{k = 45}.", "pass"),
    ("2", "So \\boxed{n = 2}.", "pass"),
    ("-2, 2", "The solutions are $\\boxed{-2}$ and $\\boxed{2}$.", "pass"),
    ("4", "We first guessed \\boxed{3}. Checking again, the final answer is \\boxed{4}.", None),
    ("3", "\\boxed{3} or \\boxed{-3}", None),
    ("5", "$5$ is what we get. \\boxed{\\text{see above}}", None),
    ("5", "The value is \\fbox{5}.", "pass"),
    ("50\\%", "\\boxed{50}\\%", None),
    ("x=5", "$x = \\boxed{5}$", None),
    ("\\frac{1}{2}", "so $\\boxed{\\frac{1}{2}}$ of the pie, i.e. $0.5$.", "pass"),
]

# The fast path's own agreement check (26 golds x 97 answers), folded in: every answer in a box.
FAST_PATH_GOLDS = ["18", "1,000", "1000", "$1,000$", "0.5", "3.50", "-0", "0", "007", "1,2", "$18$", "18.0",
    "-7", "123456789012345", "1234567890123456", "\\frac{36}{2}", "2", "\\frac{37}{8}", "\\frac{-14}{2}",
    "-\\frac{3}{4}", "\\frac{0}{5}", "\\frac{1}{3}", "\\frac{6}{8}", "\\dfrac{3}{4}", "\\frac{3}{0}",
    "\\frac{16}{8}"]  # fmt: skip
FAST_PATH_ANSWERS = ["18", " 18 ", "18.0", "\\$18", "\\$ 18", "$18$", "-18", "\\text{18}", "\\text{ 18 }", "18.",
    "{18}", "1000", "1,000", "1{,}000", "1 000", "1\\,000", "1\\ 000", "\\text{1,000}", "1000.00", "0.50",
    "3.5", "0", "-0.0", "7", "-7", "007", "1,2", "1.2", "17", "19", "+18", "123456789012344",
    "1234567890123457", "18.000001", "18.0000001", "17.999999", "18.5", "-7.000", "0.000001",
    "\\frac{36}{2}", "\\dfrac{36}{2}", "\\tfrac{36}{2}", "\\frac{35}{2}", "\\frac{-14}{2}", "-\\frac{14}{2}",
    "\\frac{0}{5}", "\\frac{1}{0}", "\\frac{4}{2}", "\\frac{2000}{2}", "\\frac{36}{2.0}", "\\frac 36 2",
    "\\frac{36}{2}.", "1/2", "\\frac{37}{8}", "\\frac{74}{16}", "4.625", "\\frac{3}{4}", "-\\frac{3}{4}",
    "\\frac{-3}{4}", "\\frac{1}{3}", "\\frac{2}{6}", "0.333333", "0.75", "-0.75", "\\frac{6}{8}",
    "\\dfrac{3}{4}", "2", "\\frac{16}{8}", "\\text{ 18}", "\\text{17}", "\\text{-7}", "\\text{-0}", "\\text{0}",
    "\\text{007}", "\\text{7}", "\\text{18.0}", "\\text{18 dollars}", "18 \\text{ dollars}",
    "18\\text{ dollars}", "18 \\text{dollars}", "18\\text{m}", "17 \\text{ dollars}", "-7 \\text{ degrees}",
    "7 \\text{ degrees}", "0 \\text{ apples}", "007 \\text{ apples}", "1000 \\text{ square feet}",
    "1,000 \\text{ dollars}", "18.0 \\text{ dollars}", "18 \\text{ E}", "18 \\text{ or more}",
    "18 \\text{ and}", "18 \\text{percent}", "-7 \\text{percent}", "-7\\text{ pct}", "18 \\text{ infants}",
    "18 \\text{ Or}"]  # fmt: skip


def boxed_pairs() -> list[tuple[str, str]]:
    """(gold, content) pairs whose content boxes its answer: every category's golds against its
    right and wrong answers in each boxed template, the delimited golds, the multi-box cases and
    the fast path's grid."""
    pairs: list[tuple[str, str]] = []
    for golds, right, wrong in CATEGORIES.values():
        for k, (gold, answer) in enumerate(product(golds, right + wrong)):
            pairs.append((gold, BOXED_TEMPLATES[k % len(BOXED_TEMPLATES)].format(a=answer)))
    for gold, right, wrong in WRAPPED_GOLDS:
        for answer, template in product(right + wrong, BOXED_TEMPLATES[:2]):
            pairs.append((gold, template.format(a=answer)))
    pairs += [(gold, content) for gold, content, _ in MULTI_BOX]
    pairs += [(g, f"\\boxed{{{a}}}") for g in FAST_PATH_GOLDS for a in FAST_PATH_ANSWERS]
    return list(dict.fromkeys(pairs))


def plain_pairs() -> list[tuple[str, str]]:
    """(gold, content) pairs whose content has no box: the lenient policy's business."""
    pairs: list[tuple[str, str]] = []
    for golds, right, wrong in CATEGORIES.values():
        for k, (gold, answer) in enumerate(product(golds[:3], right[:4] + wrong[:2])):
            pairs.append((gold, PLAIN_TEMPLATES[k % len(PLAIN_TEMPLATES)].format(a=answer)))
    return list(dict.fromkeys(pairs))


def all_golds() -> list[str]:
    """Every gold of the corpus, as stored."""
    golds = [g for golds, _, _ in CATEGORIES.values() for g in golds]
    golds += [g for g, _, _ in WRAPPED_GOLDS] + [g for g, _, _ in MULTI_BOX] + FAST_PATH_GOLDS
    return list(dict.fromkeys(golds))
