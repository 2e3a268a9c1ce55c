// Starts `rcv lsp` (diagnostics, hover, definitions, references, completion,
// formatting and the outline) for `.rcv` files.
const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const config = vscode.workspace.getConfiguration("rcv");
  const command = config.get("server.path", "rcv");
  const args = ["lsp", ...config.get("server.extraArgs", [])];
  const serverOptions = {
    run: { command, args, transport: TransportKind.stdio },
    debug: { command, args, transport: TransportKind.stdio },
  };
  const clientOptions = {
    documentSelector: [{ scheme: "file", language: "rcv" }, { scheme: "untitled", language: "rcv" }],
  };
  client = new LanguageClient("rcv", "rcv language server", serverOptions, clientOptions);
  client.start().catch((err) => {
    vscode.window.showErrorMessage(
      `rcv: cannot start \`${command} lsp\` (${err.message}); set "rcv.server.path" to the rcv binary`
    );
  });
  context.subscriptions.push({ dispose: () => client && client.stop() });
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
