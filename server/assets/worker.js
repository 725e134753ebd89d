// Bootstrap of Tandem's Dedicated Worker (a module worker): find the signed-in account's OPFS
// folder, load the worker's own wasm (built by scripts/build-worker.sh into /worker/) and start
// its event loop for that account (DESIGN.md rule 24: each account's databases in their own
// folder; the first account to sign in on this browser adopts the folder from before accounts).
// The page's build names the worker's own files, so a cache never hands an old page's worker
// to a new page or the reverse (the worker checks the page's build: docs/protocol.md "Builds").
// The server fills in the files' URLs, each naming its content (kept by the browser for good).
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const params = new URLSearchParams(self.location.search);
const account = params.get("account") ?? "";
const build = encodeURIComponent(params.get("build") ?? "");
const ofBuild = (url) => `${url}${url.includes("?") ? "&" : "?"}v=${build}`;
const { default: init, worker_main } = await import(ofBuild("__TANDEM_WORKER_JS__"));

async function readText(dir, name) {
  try {
    const file = await (await dir.getFileHandle(name)).getFile();
    return (await file.text()).trim();
  } catch {
    return null;
  }
}

async function writeText(dir, name, text) {
  const handle = await dir.getFileHandle(name, { create: true });
  const writable = await handle.createWritable();
  await writable.write(text);
  await writable.close();
}

// The account's folder: "tandem/<account>", or "tandem/anonymous" for the account that adopted
// it (the folder of the device's data from before accounts). Also notes the account as the
// last one signed in on this browser (it opens offline).
async function folderOf(account) {
  const own = `tandem/${account}`;
  if (!navigator.storage || typeof navigator.storage.getDirectory !== "function") return own;
  try {
    const root = await navigator.storage.getDirectory();
    const tandem = await root.getDirectoryHandle("tandem", { create: true });
    await writeText(tandem, "last-account", account).catch(() => {});
    let anonymous = false;
    try {
      await tandem.getDirectoryHandle("anonymous");
      anonymous = true;
    } catch {}
    if (!anonymous) return own;
    // One adoption at a time: two accounts' workers starting together must not both adopt.
    const adopt = async () => {
      const adopter = await readText(tandem, "anonymous.owner");
      if (adopter === null) {
        await writeText(tandem, "anonymous.owner", account);
        return "tandem/anonymous";
      }
      return adopter === account ? "tandem/anonymous" : own;
    };
    return navigator.locks ? await navigator.locks.request("tandem-adopt", adopt) : await adopt();
  } catch {
    return own;
  }
}

await init({ module_or_path: ofBuild("__TANDEM_WORKER_WASM__") });
if (UUID.test(account)) {
  await worker_main(account, await folderOf(account));
} else {
  await worker_main("", "");
}
