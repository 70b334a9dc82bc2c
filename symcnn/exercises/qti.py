"""`symcnn exercise --format qti`: the batch as a QTI 1.2 package, ``qti.zip``, as Canvas imports it.

``imsmanifest.xml`` names one assessment, ``<ident>.xml``. It holds one section per question of the
sheet with ``<selection_number>1</selection_number>`` over the variants (a Canvas question group: each
student draws one), each variant a ``numerical_question`` answered in ``<render_fib fibtype="Decimal">``
and scored by ``<varequal>`` the key's value or ``<vargte>``/``<varlte>`` its tolerance band, as Canvas
writes an "exact answer with margin". The setup's pictures are inline (data: URIs), so the package
needs no other files. The zip's entries have a fixed date, so the same seed gives the same bytes.
"""

from __future__ import annotations

import io
import zipfile

from ..rendering.formats import jinja_environment
from .lms import Batch, by_question, number_text, question_html

FILE = "qti.zip"
PICTURES = "inline"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can say: no clock in the bytes


def documents(batch: Batch) -> dict[str, str]:
    """File name in the package -> its XML."""
    env = jinja_environment(autoescape=True)
    env.filters["number"] = number_text
    ident = f"symcnn-{batch.name}"
    assessment = f"{ident}.xml"
    return {
        "imsmanifest.xml": env.get_template("lms/imsmanifest.xml.j2").render(ident=ident, assessment=assessment),
        assessment: env.get_template("lms/qti.xml.j2").render(
            batch=batch,
            ident=ident,
            questions=lambda qid: by_question(batch, qid),
            question_html=lambda item, q: question_html(item, q, PICTURES),
        ),
    }


def write(batch: Batch) -> dict[str, bytes]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        for name, text in documents(batch).items():
            entry = zipfile.ZipInfo(name, ZIP_DATE)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            package.writestr(entry, text.encode("utf-8"))
    return {FILE: buffer.getvalue()}
