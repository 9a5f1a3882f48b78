# Installs butler-mqtt as a Windows service (docs/operations.md, "Windows: a service").
#
# Node.js does not speak the Windows service control protocol, so a service wrapper runs it: NSSM
# (nssm.exe, https://nssm.cc, one executable, no installer). The service runs
#     node.exe <InstallDir>\node_modules\butler-mqtt\bin\butler-mqtt.js run --config <Config>
# stops it with Ctrl-C (butler-mqtt then flushes and publishes "offline", as on SIGTERM), restarts it
# when it exits with an error except exit code 2 (invalid configuration), and Windows restarts the
# wrapper itself should it fail (sc.exe failure).
#
# Run in an elevated PowerShell, after `npm install --omit=dev <package>.tgz` in InstallDir:
#     .\install-service.ps1 -InstallDir C:\butler-mqtt -Config C:\butler-mqtt\butler.yaml -Nssm C:\tools\nssm.exe
# Remove:  nssm stop butler-mqtt; nssm remove butler-mqtt confirm
[CmdletBinding()]
param(
    [string]$InstallDir = 'C:\butler-mqtt',
    [string]$Config = 'C:\butler-mqtt\butler.yaml',
    [string]$ServiceName = 'butler-mqtt',
    [string]$Nssm = 'nssm.exe',
    [string]$Node = '',
    # Console output of the service (start-up failures before logging starts, crashes). butler-mqtt's
    # own log file is configured in the config: Butler.fileLogging and Butler.logDirectory.
    [string]$LogDir = 'C:\butler-mqtt\log',
    # The account the service runs as; default LocalSystem. It needs write access to the outbox
    # folder and LogDir, and read access to the Sense certificates named in Butler.cert.
    [pscredential]$Credential = $null
)
$ErrorActionPreference = 'Stop'

if (-not $Node) { $Node = (Get-Command node.exe).Source }
$bin = Join-Path $InstallDir 'node_modules\butler-mqtt\bin\butler-mqtt.js'
if (-not (Test-Path -LiteralPath $bin)) { throw "butler-mqtt is not installed in ${InstallDir} (no ${bin}): run npm install there first" }
if (-not (Test-Path -LiteralPath $Config)) { throw "config file ${Config} not found" }
# NSSM joins the application parameters into one command line; a space in a path would split it.
foreach ($p in @($bin, $Config)) { if ($p.Contains(' ')) { throw "the path '${p}' contains a space; use a folder without spaces (e.g. C:\butler-mqtt)" } }

# A service must not start on a config that cannot work: check-config exits 2 when it is invalid.
& $Node $bin check-config --config $Config | Out-Null
if ($LASTEXITCODE -ne 0) { throw "check-config --config ${Config} failed (exit code ${LASTEXITCODE}); fix the config first" }

New-Item -ItemType Directory -Force -Path $LogDir | Out-Null

function Invoke-Nssm {
    & $Nssm @args
    if ($LASTEXITCODE -ne 0) { throw "nssm $($args -join ' ') failed (exit code ${LASTEXITCODE})" }
}

Invoke-Nssm install $ServiceName $Node
Invoke-Nssm set $ServiceName AppParameters "$bin run --config $Config"
Invoke-Nssm set $ServiceName AppDirectory $InstallDir
Invoke-Nssm set $ServiceName DisplayName 'butler-mqtt (Qlik Sense to MQTT)'
Invoke-Nssm set $ServiceName Description 'Publishes Qlik Sense reload alerts, service and license status to MQTT.'
Invoke-Nssm set $ServiceName Start SERVICE_AUTO_START
# Stop: Ctrl-C first and wait up to 30 s (more than delivery.shutdownFlushSeconds + 10 s).
Invoke-Nssm set $ServiceName AppStopMethodConsole 30000
# butler-mqtt exited: restart it after 5 s, except on exit code 2 (configuration error), where the service stops.
Invoke-Nssm set $ServiceName AppExit Default Restart
Invoke-Nssm set $ServiceName AppExit 2 Exit
Invoke-Nssm set $ServiceName AppRestartDelay 5000
# Console output to a file, rotated by NSSM at 10 MiB.
Invoke-Nssm set $ServiceName AppStdout (Join-Path $LogDir 'service-console.log')
Invoke-Nssm set $ServiceName AppStderr (Join-Path $LogDir 'service-console.log')
Invoke-Nssm set $ServiceName AppRotateFiles 1
Invoke-Nssm set $ServiceName AppRotateOnline 1
Invoke-Nssm set $ServiceName AppRotateBytes 10485760
if ($Credential) {
    Invoke-Nssm set $ServiceName ObjectName $Credential.UserName $Credential.GetNetworkCredential().Password
}

# Should the wrapper itself fail, Windows restarts the service: after 5 s, 10 s, then every 60 s;
# the failure count resets after a day without failures.
& sc.exe failure $ServiceName reset= 86400 actions= restart/5000/restart/10000/restart/60000
if ($LASTEXITCODE -ne 0) { throw "sc.exe failure ${ServiceName} failed (exit code ${LASTEXITCODE})" }

Invoke-Nssm start $ServiceName
& sc.exe query $ServiceName
