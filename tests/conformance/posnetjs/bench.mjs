// Times one 20-line cash receipt printed with the independent client `posnetjs`, for the
// side-by-side benchmark (`cargo bench --bench e2e`).
//
// usage: node bench.mjs DEVICE_PATH BAUD LINES
// Prints one JSON line: {"ms": <trinit sent to trend answered>, "bytes_out", "bytes_in"}.

import posnetjs from 'posnetjs';

const {
  Posnet,
  TransactionInitCommand,
  TransactionLineCommand,
  TransactionPaymentCommand,
  TransactionEndCommand,
  PaymentFormType,
} = posnetjs;

const [path, baudText, linesText] = process.argv.slice(2);
if (!path || !baudText || !linesText) {
  console.error('usage: node bench.mjs DEVICE_PATH BAUD LINES');
  process.exit(2);
}
const baudRate = Number(baudText);
const lines = Number(linesText);
const PRICE = 1234;

// posnetjs only accepts devices that SerialPort.list() reports as Posnet: name ours.
Posnet.getAvailableDevices = async () => [{ path }];

const posnet = new Posnet({ path, baudRate });
let bytesIn = 0;
let bytesOut = 0;

async function run(command) {
  const sent = command.execute();
  bytesOut += sent.length;
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no reply to ${command.allias}`)), 10000);
  });
  try {
    return await Promise.race([posnet.execute(command), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function main() {
  await posnet.bootstrap();
  const port = posnet.serialPort;
  port.on('data', (data) => { bytesIn += data.length; });
  await new Promise((resolve, reject) => {
    if (port.isOpen) return resolve();
    port.once('open', resolve);
    port.once('error', reject);
  });
  const t0 = process.hrtime.bigint();
  await run(new TransactionInitCommand({ blockMode: false }));
  for (let i = 0; i < lines; i++) {
    const name = `Towar posnetjs ${String(i).padStart(2, '0')}`;
    await run(new TransactionLineCommand({ name, vatRate: 0, unitPrice: PRICE, quantity: 1, totalAmount: PRICE }));
  }
  await run(new TransactionPaymentCommand({ type: PaymentFormType.CASH, value: PRICE * lines }));
  await run(new TransactionEndCommand({ total: PRICE * lines, valuePaymentForms: PRICE * lines }));
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  console.log(JSON.stringify({ ms, bytes_out: bytesOut, bytes_in: bytesIn }));
}

main().then(
  () => {
    posnet.serialPort?.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  },
  (e) => {
    console.error(`FAIL: ${e?.message ?? JSON.stringify(e)}`);
    process.exit(1);
  },
);
