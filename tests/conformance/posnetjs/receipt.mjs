// Prints one receipt on a POSNET printer with the independent client `posnetjs`.
//
// usage: node receipt.mjs DEVICE_PATH
//
// The client is used as shipped; this script only works around its documented quirks:
// it looks for devices with SerialPort.list() (we name the device ourselves), it does
// not time out, and it does not report every `?code` error reply (codes missing from
// its table are ignored, and commands with a parser never reject). So every reply is
// also checked here, byte for byte: framing, CRC-16/XMODEM, mnemonic, no error field.
// Exits 0 only if every command was answered without an error.

import posnetjs from 'posnetjs';

const {
  Posnet,
  StatusCommand,
  TransactionInitCommand,
  TransactionVatBuyerCommand,
  TransactionLineCommand,
  TransactionPaymentCommand,
  TransactionEndCommand,
  PaymentFormType,
} = posnetjs;

const path = process.argv[2];
if (!path) {
  console.error('usage: node receipt.mjs DEVICE_PATH');
  process.exit(2);
}

const TIMEOUT_MS = 5000;

// Quirk 1: bootstrap() only accepts devices that SerialPort.list() reports as Posnet.
Posnet.getAvailableDevices = async () => [{ path }];

function crc16xmodem(bytes) {
  let crc = 0;
  for (const b of bytes) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) {
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
  }
  return crc;
}

// Shows a frame with its control characters spelled out.
function show(buf) {
  return buf
    .toString('latin1')
    .replace(/\x02/g, '<STX>')
    .replace(/\x03/g, '<ETX>')
    .replace(/\t/g, '<TAB>');
}

// Checks one raw reply: STX payload '#' CRC ETX, good CRC, expected mnemonic, no `?code`.
function checkReply(raw, mnemonic) {
  const s = raw.toString('latin1');
  const m = /^\x02([^\x02\x03]*)#([0-9A-Fa-f]{4})\x03$/.exec(s);
  if (!m) throw new Error(`malformed reply to ${mnemonic}: ${show(raw)}`);
  const crc = crc16xmodem(Buffer.from(m[1], 'latin1'));
  if (crc !== parseInt(m[2], 16)) {
    throw new Error(`bad CRC in reply to ${mnemonic}: ${show(raw)} (expected ${crc.toString(16).toUpperCase().padStart(4, '0')})`);
  }
  const fields = m[1].split('\t');
  if (fields[0] !== mnemonic) throw new Error(`reply to ${mnemonic} is for ${fields[0]}: ${show(raw)}`);
  const err = fields.slice(1).find((f) => f.startsWith('?'));
  if (err) throw new Error(`printer refused ${mnemonic} with error ${err.slice(1)}: ${show(raw)}`);
  const params = {};
  for (const f of fields.slice(1)) if (f) params[f.slice(0, 2)] = f.slice(2);
  return params;
}

const posnet = new Posnet({ path, baudRate: 9600 });
let lastReply = null;

async function run(command) {
  const sent = command.execute();
  console.log(`> ${show(sent)}`);
  lastReply = null;
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no reply to ${command.allias} within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
  });
  let result;
  try {
    result = await Promise.race([posnet.execute(command), timeout]);
  } catch (e) {
    const raw = lastReply ? ` (reply: ${show(lastReply)})` : '';
    throw new Error(`posnetjs rejected ${command.allias}: ${e?.message ?? JSON.stringify(e)}${raw}`);
  } finally {
    clearTimeout(timer);
  }
  console.log(`< ${show(lastReply)}`);
  const params = checkReply(lastReply, command.allias);
  return { result, params };
}

async function main() {
  await posnet.bootstrap();
  // Quirk 3: posnetjs takes each `data` event as one whole reply; record the same bytes
  // so that they can be checked independently of its parser.
  const port = posnet.serialPort;
  port.on('data', (data) => { lastReply = data; });
  port.on('error', (e) => { console.error(`serial port error: ${e.message}`); process.exit(1); });
  await new Promise((resolve, reject) => {
    if (port.isOpen) return resolve();
    port.once('open', resolve);
    port.once('error', reject);
  });

  // Status first: no transaction may be open.
  // posnetjs parses the flags as Y/N, but POSNET printers answer T/N (fsT = fiscal),
  // so the raw fields are checked instead of its booleans.
  const before = (await run(new StatusCommand())).params;
  if (before.ts !== '0') throw new Error(`scomm: a transaction is already open (ts${before.ts})`);
  if (before.fs !== 'T') throw new Error(`scomm: the printer is not in fiscal mode (fs${before.fs})`);

  await run(new TransactionInitCommand({ blockMode: false }));
  await run(new TransactionVatBuyerCommand({ nipNumber: '5260001246' }));
  // Quirk 2: Latin-1 text, so ASCII names only. VAT is the slot index (0 = A).
  await run(new TransactionLineCommand({ name: 'Chleb razowy', vatRate: 0, unitPrice: 450, quantity: 2, totalAmount: 900 }));
  await run(new TransactionLineCommand({ name: 'Mleko 3.2%', vatRate: 1, unitPrice: 349, quantity: 1, totalAmount: 349 }));
  await run(new TransactionLineCommand({ name: 'Jablka', vatRate: 2, unitPrice: 600, quantity: 1.5, totalAmount: 900 }));
  await run(new TransactionPaymentCommand({ type: PaymentFormType.CARD, value: 1000 }));
  await run(new TransactionPaymentCommand({ type: PaymentFormType.CASH, value: 1149 }));
  await run(new TransactionEndCommand({ total: 2149, valuePaymentForms: 2149 }));

  // Status again: the receipt is closed and the day's totalizers are no longer zero.
  const after = (await run(new StatusCommand())).params;
  if (after.ts !== '0') throw new Error(`scomm after trend: a transaction is still open (ts${after.ts})`);
  if (after.tz !== 'N') throw new Error(`scomm after trend: totalizers still zero (tz${after.tz})`);
}

main().then(
  () => {
    console.log('receipt printed');
    posnet.serialPort?.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  },
  (e) => {
    console.error(`FAIL: ${e?.message ?? JSON.stringify(e)}`);
    process.exit(1);
  },
);
