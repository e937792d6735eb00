"""Drive `fiscald sim novitus-xml` with the unmodified litex-novitus-xml 1.0.0.

usage: client.py DEVICE OUT.json   (prints what the client saw; OUT.json gets the results)
"""
import collections
import collections.abc
import json
import sys

# litex-novitus-xml was written for Python < 3.10 (the reference lists this quirk): its
# non-fiscal printout asks `collections.Mapping`.
for name in ("Mapping", "MutableMapping", "Sequence"):
    if not hasattr(collections, name):
        setattr(collections, name, getattr(collections.abc, name))

from litex.novitus_xml.printer import Printer  # noqa: E402
from litex.novitus_xml.exceptions import ProtocolError  # noqa: E402

device, out = sys.argv[1], sys.argv[2]
p = Printer(device, timeout=5)
results = {}
p.set_error("silent")
results["dle"] = dict(p.dle())
results["enq_before"] = dict(p.enq())
results["taxrates"] = p.taxrates_get()
p.receipt_begin()
p.item("Żółć gęślą jaźń", 2, "szt", "A", 4.50)
p.item('Sok "Ąę" <1 l> & syn', 1, "szt", "B", 2.00)
try:
    p.item("Woda", 1, "szt", "G", 1.00)
    results["inactive_vat"] = "accepted"
except ProtocolError as e:
    results["inactive_vat"] = str(e)
p.payment_add("card", 11.00)
p.receipt_close(total=11.00, systemno="litex-1", checkout="1", cashier="Jan", nip="5260250274")
results["enq_after"] = dict(p.enq())
info = p.info_checkout()
results["checkout"] = {k: v for k, v in info.attrib.items()}
p.non_fiscal_printout(["Łódź & <Kraków>", "Dziękujemy"])
p.receipt_begin()
p.item("Anulowany", 1, "szt", "A", 1.00)
p.receipt_cancel()
results["enq_cancelled"] = dict(p.enq())
p.close()
print(json.dumps(results, ensure_ascii=False, indent=1))
with open(out, "w") as f:
    json.dump(results, f, ensure_ascii=False)
