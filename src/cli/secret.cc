// `hearth secret`: age files (keygen, encrypt, decrypt with age's flags) and
// SOPS files (encrypt --sops, decrypt, edit, get, set, rotate, updatekeys).
#include "cli/secret.h"

#include <memory>

#include "age/age.h"

namespace hearth::cli {

bool InputIsAge(std::string_view head) { return age::LooksLikeAge(head); }

void RegisterSecret(CLI::App& app, GlobalOptions& g, Command& run) {
  auto* secret = app.add_subcommand(
      "secret",
      "Encrypt and decrypt secrets: age files (age-compatible flags) and SOPS files (YAML/JSON)");
  secret->require_subcommand(1);
  // Every secret command may hold plaintext: never let it reach a core file.
  secret->parse_complete_callback([] { DisableCoreDumps(); });
  secret->footer(
      "age: keygen, encrypt, decrypt work like age-keygen and age (-r, -R, -i, -a, -p, -o).\n"
      "SOPS: encrypt --sops, decrypt (detects SOPS), edit, get, set, rotate, updatekeys.\n"
      "Identities: -i, else HEARTH_AGE_KEY_FILE, the lab's secrets.identity, SOPS_AGE_KEY,\n"
      "SOPS_AGE_KEY_FILE, then $XDG_CONFIG_HOME/sops/age/keys.txt (~/.config/sops/age/keys.txt).");

  {
    auto a = std::make_shared<SecretKeygenArgs>();
    auto* cmd = secret->add_subcommand("keygen", "Generate an age X25519 identity (like age-keygen)");
    cmd->add_option("-o,--output", a->output, "Write the identity to this file (mode 0600)");
    cmd->add_flag("-y", a->to_recipients, "Print the recipients of the identities in INPUT");
    cmd->add_option("INPUT", a->input, "Identity file for -y (default: stdin)");
    cmd->callback([&g, &run, a] { run = [&g, a] { return RunAgeKeygen(g, *a); }; });
  }
  {
    auto a = std::make_shared<SecretEncryptArgs>();
    auto* cmd = secret->add_subcommand(
        "encrypt", "Encrypt a file to age recipients or a passphrase; with --sops, a SOPS file");
    cmd->add_option("-r,--recipient", a->recipients, "Encrypt to this age1... recipient (repeatable)")
        ->allow_extra_args(false);
    cmd->add_option("-R,--recipients-file", a->recipient_files,
                    "Encrypt to the recipients listed in FILE (repeatable)")
        ->allow_extra_args(false);
    cmd->add_flag("-p,--passphrase", a->passphrase, "Encrypt with a passphrase read from the terminal");
    cmd->add_flag("-a,--armor", a->armor, "Write PEM-style ASCII armor");
    cmd->add_option("-o,--output-file", a->output, "Write here instead of stdout");
    cmd->add_option("INPUT", a->input, "File to encrypt (default: stdin)");
    cmd->add_flag("--sops", a->sops, "Encrypt a YAML/JSON document in SOPS format");
    cmd->add_flag("--in-place", a->in_place, "SOPS: replace INPUT with the encrypted file");
    cmd->add_option("--unencrypted-suffix", a->unencrypted_suffix,
                    "SOPS: keys ending with this stay clear text (default _unencrypted)");
    cmd->add_option("--encrypted-suffix", a->encrypted_suffix, "SOPS: encrypt only keys ending with this");
    cmd->add_option("--unencrypted-regex", a->unencrypted_regex, "SOPS: keys matching this stay clear text");
    cmd->add_option("--encrypted-regex", a->encrypted_regex, "SOPS: encrypt only keys matching this");
    cmd->add_flag("--mac-only-encrypted", a->mac_only_encrypted, "SOPS: the MAC covers encrypted values only");
    cmd->callback([&g, &run, a] {
      run = [&g, a] { return a->sops ? RunSopsEncrypt(g, *a) : RunAgeEncrypt(g, *a); };
    });
  }
  {
    auto a = std::make_shared<SecretDecryptArgs>();
    auto* cmd = secret->add_subcommand(
        "decrypt", "Decrypt an age file, or a SOPS file (detected from its content)");
    cmd->add_option("-i,--identity", a->identity_files, "Use the identities in FILE (repeatable)")
        ->allow_extra_args(false);
    cmd->add_option("-o,--output-file", a->output,
                    "Write here instead of stdout (written only when all of it decrypted)");
    cmd->add_option("INPUT", a->input, "File to decrypt (default: stdin)");
    cmd->add_flag("--ignore-mac", a->ignore_mac, "SOPS: do not verify the file's MAC");
    cmd->add_flag("--in-place", a->in_place, "SOPS: replace INPUT with the plaintext");
    cmd->callback([&g, &run, a] { run = [&g, a] { return RunSopsDecrypt(g, *a); }; });
  }
  auto file_command = [&](const char* name, const char* help, auto runner) {
    auto a = std::make_shared<SecretFileArgs>();
    auto* cmd = secret->add_subcommand(name, help);
    cmd->add_option("--file", a->file, "SOPS file (default: the lab's first secrets file)");
    cmd->add_option("-i,--identity", a->identity_files, "Use the identities in FILE (repeatable)")
        ->allow_extra_args(false);
    cmd->callback([&g, &run, a, runner] { run = [&g, a, runner] { return runner(g, *a); }; });
    return std::make_pair(cmd, a);
  };
  {
    auto [cmd, a] = file_command("edit", "Edit a SOPS file in $EDITOR; unchanged values keep their ciphertext",
                                 RunSopsEdit);
    cmd->add_option("FILE", a->file, "SOPS file (default: the lab's first secrets file)");
  }
  {
    auto [cmd, a] = file_command("get", "Print one decrypted value (key path like db.password)", RunSopsGet);
    cmd->add_option("PATH", a->path, "Dotted key path")->required();
  }
  {
    auto [cmd, a] = file_command("set", "Set one value (encrypted in place)", RunSopsSet);
    cmd->add_option("PATH", a->path, "Dotted key path")->required();
    cmd->add_option("VALUE", a->value, "New value; '-' reads it from stdin")->required();
  }
  file_command("rotate", "Re-encrypt a SOPS file under a new data key", RunSopsRotate);
  {
    auto [cmd, a] = file_command(
        "updatekeys",
        "Change a SOPS file's recipients (default: make them the lab's secrets.recipients)",
        RunSopsUpdateKeys);
    cmd->add_option("--add", a->add_recipients, "Add this age1... recipient (repeatable)")
        ->allow_extra_args(false);
    cmd->add_option("--remove", a->remove_recipients, "Remove this age1... recipient (repeatable)")
        ->allow_extra_args(false);
  }
}

}  // namespace hearth::cli
