"""List the encoder presets (conf/encoder/) and NeMo's supported pretrained names, marking
which load on this machine without network.

  python scripts/list_encoders.py [--presets-only]
"""

import argparse

from bertlab.encoders import encoder_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets-only", action="store_true", help="skip NeMo's list (avoids the NeMo import)")
    args = parser.parse_args()
    rows = encoder_table(include_nemo=not args.presets_only)
    print(f"{'preset':<20}{'offline':<9}model")
    for preset, name, offline in rows:
        print(f"{preset:<20}{'yes' if offline else 'no':<9}{name}")
    print("\nUse a preset with encoder=<preset>, any other name or local directory with "
          "model.language_model.pretrained_model_name=<name>.")


if __name__ == "__main__":
    main()
