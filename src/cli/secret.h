// Private to the CLI: the `hearth secret` commands. secret.cc defines the
// command line; secret_age.cc runs the age commands (keygen, and encrypt /
// decrypt of age files); secret_sops.cc runs the SOPS commands.
#ifndef HEARTH_CLI_SECRET_H_
#define HEARTH_CLI_SECRET_H_

#include <string>
#include <vector>

#include "cli/cli.h"

namespace hearth::cli {

struct SecretKeygenArgs {
  std::string output;            // -o: write the identity file here (mode 0600)
  bool to_recipients = false;    // -y: print the recipients of identities
  std::string input;             // -y's identity file ("" or "-" = stdin)
};

struct SecretEncryptArgs {
  std::vector<std::string> recipients;       // -r age1...
  std::vector<std::string> recipient_files;  // -R FILE
  bool passphrase = false;                   // -p (read from the terminal)
  bool armor = false;                        // -a
  std::string output;                        // -o ("" = stdout)
  std::string input;                         // "" or "-" = stdin
  // SOPS mode (--sops): the input is a YAML/JSON document.
  bool sops = false;
  bool in_place = false;  // --in-place
  std::string unencrypted_suffix, encrypted_suffix, unencrypted_regex, encrypted_regex;
  bool mac_only_encrypted = false;
};

struct SecretDecryptArgs {
  std::vector<std::string> identity_files;  // -i FILE
  std::string output;                       // -o ("" = stdout)
  std::string input;                        // "" or "-" = stdin
  bool ignore_mac = false;                  // SOPS: --ignore-mac
  bool in_place = false;                    // SOPS: --in-place
};

// The SOPS file commands: FILE defaults to the lab's first secrets file.
struct SecretFileArgs {
  std::string file;                         // --file
  std::vector<std::string> identity_files;  // -i FILE
  std::string path;                         // get/set: dotted key path
  std::string value;                        // set: the value ("-" = read stdin)
  std::vector<std::string> add_recipients;     // updatekeys --add
  std::vector<std::string> remove_recipients;  // updatekeys --remove
};

int RunAgeKeygen(const GlobalOptions& g, const SecretKeygenArgs& a);
int RunAgeEncrypt(const GlobalOptions& g, const SecretEncryptArgs& a);
int RunAgeDecrypt(const GlobalOptions& g, const SecretDecryptArgs& a);

int RunSopsEncrypt(const GlobalOptions& g, const SecretEncryptArgs& a);
int RunSopsDecrypt(const GlobalOptions& g, const SecretDecryptArgs& a);
int RunSopsEdit(const GlobalOptions& g, const SecretFileArgs& a);
int RunSopsGet(const GlobalOptions& g, const SecretFileArgs& a);
int RunSopsSet(const GlobalOptions& g, const SecretFileArgs& a);
int RunSopsRotate(const GlobalOptions& g, const SecretFileArgs& a);
int RunSopsUpdateKeys(const GlobalOptions& g, const SecretFileArgs& a);

// The lab's secrets.identity as a path ("" when the lab sets none or does not
// load). Consulted after -i and HEARTH_AGE_KEY_FILE, before SOPS's places.
std::string LabIdentityFile(const GlobalOptions& g);

// True when the input (its first bytes) is an age file, binary or armored.
bool InputIsAge(std::string_view head);

}  // namespace hearth::cli

#endif  // HEARTH_CLI_SECRET_H_
