// The `demo` stage's database, for users who have none yet: a VPC, an RDS
// PostgreSQL instance and an RDS Proxy in front of it (Lambda opens many short
// sessions; the proxy pools them). The gateway runs in the VPC's private
// subnets, which have no NAT: it reaches Secrets Manager through an interface
// endpoint, so it has no internet egress at all (an `ldap` line pointing at a
// server outside the VPC cannot work there).

export interface DemoDatabase {
  readonly vpc: sst.aws.Vpc;
  readonly postgres: sst.aws.Postgres;
}

export function demoDatabase(): DemoDatabase {
  const vpc = new sst.aws.Vpc("Network");
  new aws.ec2.VpcEndpoint("SecretsManagerEndpoint", {
    vpcId: vpc.id,
    serviceName: $interpolate`com.amazonaws.${aws.getRegionOutput().region}.secretsmanager`,
    vpcEndpointType: "Interface",
    privateDnsEnabled: true,
    subnetIds: vpc.privateSubnets,
    // The VPC's security group admits traffic from inside the VPC only.
    securityGroupIds: vpc.securityGroups,
  });
  const postgres = new sst.aws.Postgres("Database", { vpc, proxy: true });
  return { vpc, postgres };
}
