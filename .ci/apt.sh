# Sourced by the CI scripts: apt_install PACKAGE... installs Debian packages, refreshing the
# package lists once per machine boot however many scripts need packages (and once more only
# when an install from lists refreshed earlier in this boot fails).
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    local stamp=/run/renku-env-operator-apt-updated
    if [ ! -e "$stamp" ]; then
        apt-get update -qq && touch "$stamp"
    fi
    if ! apt-get install -y -qq --no-install-recommends "$@" >/dev/null; then
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    fi
}
