"""Drive `fiscald sim thermal --dialect novitus` with the unmodified litex-novitus 1.0.0.

usage: client.py DEVICE OUT.json   (prints what the client saw; OUT.json gets the results)
"""
import collections
import collections.abc
import json
import sys

# litex-novitus was written for Python < 3.10 (the reference lists this quirk).
for name in ("Mapping", "MutableMapping", "Sequence"):
    if not hasattr(collections, name):
        setattr(collections, name, getattr(collections.abc, name))

from litex.novitus.printer import Printer  # noqa: E402
from litex.novitus.exceptions import ProtocolError  # noqa: E402

device, out = sys.argv[1], sys.argv[2]
p = Printer(device, timeout=5, encoding="cp1250")
results = {}
p.set_error("silent")
results["dle"] = p.dle()
results["enq_before"] = p.enq()
results["taxrates"] = p.taxrates_get()
p.receipt_begin()
p.item(1, "Żółć gęślą jaźń", 2, "A", 4.50)
p.item(2, "Chleb", 1, "B", 2.00)
try:
    p.item(3, "Sok", 1, "G", 1.00)
    results["inactive_vat"] = "accepted"
except ProtocolError as e:
    results["inactive_vat"] = str(e)
p.payment_add("card", 11.00)
p.receipt_close(total=11.00, cashier="Jan")
results["enq_after"] = p.enq()
data = p.cash_register_data()
results["receiptcount"] = data["receiptcount"].decode()
results["lasttransactionerror"] = data["lasttransactionerror"].decode()
p.receipt_begin()
p.item(1, "Anulowany", 1, "A", 1.00)
p.receipt_cancel()
results["enq_cancelled"] = p.enq()
p.close()
print(json.dumps(results, ensure_ascii=False, indent=1))
with open(out, "w") as f:
    json.dump(results, f, ensure_ascii=False)
